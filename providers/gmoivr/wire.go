// Package gmoivr speaks GMO Payment Gateway's IVR payment Web API (seed 001):
// AuthRegistApi registers an order an operator's phone call will authorize,
// AuthSearchApi reads its progress. JSON in UTF-8, apiKey and apiPassword in
// every body, injected from paynorm's config.
package gmoivr

import (
	"bytes"
	"encoding/json"
)

// AnyItem is one 任意項目.
type AnyItem struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// credentials are set by the client on every request; apps never see them.
type credentials struct {
	APIKey      string `json:"apiKey"`
	APIPassword string `json:"apiPassword"`
}

func (c *credentials) set(key, pass string) { c.APIKey, c.APIPassword = key, pass }

// RegistRequest is the body of AuthRegistApi.
type RegistRequest struct {
	credentials
	UseDivisionCode string    `json:"useDivisionCode"`
	AnyItem         []AnyItem `json:"anyItem,omitempty"`
	UserID          string    `json:"userId,omitempty"`
	GMOPG           GMOPG     `json:"gmopg"`
}

// GMOPG is the payment block of AuthRegistApi.
type GMOPG struct {
	ShopID string     `json:"shopId,omitempty"`
	SiteID string     `json:"siteId,omitempty"`
	Auth   *AuthBlock `json:"auth,omitempty"`
	Save   *SaveBlock `json:"save,omitempty"`
}

// AuthBlock is the カードオーソリ block; every value is a string on the wire.
type AuthBlock struct {
	OrderID         string `json:"orderId,omitempty"`
	JobCd           string `json:"jobCd"`
	ItemCode        string `json:"itemCode,omitempty"`
	Amount          string `json:"amount,omitempty"`
	Tax             string `json:"tax,omitempty"`
	Method          string `json:"method,omitempty"`
	PayTimes        string `json:"payTimes,omitempty"`
	ClientField1    string `json:"clientField1,omitempty"`
	ClientField2    string `json:"clientField2,omitempty"`
	ClientField3    string `json:"clientField3,omitempty"`
	ClientFieldFlag string `json:"clientFieldFlag,omitempty"`
}

// SaveBlock is the カード登録 block.
type SaveBlock struct {
	MemberID    string `json:"memberId,omitempty"`
	MemberName  string `json:"memberName,omitempty"`
	SeqMode     string `json:"seqMode,omitempty"`
	CardSeq     string `json:"cardSeq,omitempty"`
	DefaultFlag string `json:"defaultFlag,omitempty"`
	CardName    string `json:"cardName,omitempty"`
	CardPass    string `json:"cardPass,omitempty"`
	HolderName  string `json:"holderName,omitempty"`
	UpdateType  string `json:"updateType,omitempty"`
}

// RegistResponse is AuthRegistApi's answer.
type RegistResponse struct {
	ResultCode       string   `json:"resultCode"`
	ErrorMessageList []string `json:"errorMessageList,omitempty"`
	DiscrementID     string   `json:"discrementId,omitempty"`
	ReceiptNo        string   `json:"receiptNo,omitempty"`
	OrderID          string   `json:"orderId,omitempty"`
	MemberID         string   `json:"memberId,omitempty"`
}

// SearchRequest is the body of AuthSearchApi.
type SearchRequest struct {
	credentials
	ReceiptNo        string `json:"receiptNo"`
	AnyItemReturnFlg string `json:"anyItemReturnFlg,omitempty"`
	DetailReturnFlg  string `json:"detailReturnFlg,omitempty"`
}

// Step holds what every executed step reports.
type Step struct {
	PSPStatusCode       string `json:"pspStatusCode"`
	TransactionDatetime string `json:"transactionDatetime"`
	ErrCode             string `json:"errCode,omitempty"`
	ErrInfo             string `json:"errInfo,omitempty"`
}

// EntryTranResult is the 取引登録 step. AccessID/AccessPass are not decoded:
// they never leave paynorm, so paynorm does not even hold them.
type EntryTranResult struct {
	Step
}

// ExecTranResult is the 決済実行 step.
type ExecTranResult struct {
	Step
	ACS          string `json:"acs,omitempty"`
	OrderID      string `json:"orderId,omitempty"`
	Forward      string `json:"forward,omitempty"`
	Method       string `json:"method,omitempty"`
	PayTimes     string `json:"payTimes,omitempty"`
	Approve      string `json:"approve,omitempty"`
	TranID       string `json:"tranId,omitempty"`
	TranDate     string `json:"tranDate,omitempty"`
	CheckString  string `json:"checkString,omitempty"`
	ClientField1 string `json:"clientField1,omitempty"`
	ClientField2 string `json:"clientField2,omitempty"`
	ClientField3 string `json:"clientField3,omitempty"`
}

// MemberResult is the 会員参照 or 会員登録 step.
type MemberResult struct {
	Step
	MemberID   string `json:"memberId,omitempty"`
	MemberName string `json:"memberName,omitempty"`
	DeleteFlag string `json:"deleteFlag,omitempty"`
}

// CardResult is the 決済後カード登録 or カード登録/更新 step.
type CardResult struct {
	Step
	CardSeq                string `json:"cardSeq,omitempty"`
	CardNo                 string `json:"cardNo,omitempty"`
	Forward                string `json:"forward,omitempty"`
	Brand                  string `json:"brand,omitempty"`
	DomesticFlag           string `json:"domesticFlag,omitempty"`
	IssuerCode             string `json:"issuerCode,omitempty"`
	DebitPrepaidFlag       string `json:"debitPrepaidFlag,omitempty"`
	DebitPrepaidIssuerName string `json:"debitPrepaidIssuerName,omitempty"`
	ForwardFinal           string `json:"forwardFinal,omitempty"`
}

// LastTransaction is the final result of each step.
type LastTransaction struct {
	EntryTran    *EntryTranResult `json:"entryTran,omitempty"`
	ExecTran     *ExecTranResult  `json:"execTran,omitempty"`
	SearchMember *MemberResult    `json:"searchMember,omitempty"`
	SaveMember   *MemberResult    `json:"saveMember,omitempty"`
	TradedCard   *CardResult      `json:"tradedCard,omitempty"`
	SaveCard     *CardResult      `json:"saveCard,omitempty"`
}

// List decodes a JSON array or a single object: the spec gives some
// history entries 要素数 1 and others 1-3.
type List[T any] []T

// UnmarshalJSON accepts T or []T.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var s []T
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*l = List[T]{one}
	return nil
}

// History is the execution history (detailReturnFlg=1).
type History struct {
	EntryTran    List[EntryTranResult] `json:"entryTran,omitempty"`
	ExecTran     List[ExecTranResult]  `json:"execTran,omitempty"`
	SearchMember List[MemberResult]    `json:"searchMember,omitempty"`
	SaveMember   List[MemberResult]    `json:"saveMember,omitempty"`
	TradedCard   List[CardResult]      `json:"tradedCard,omitempty"`
	SaveCard     List[CardResult]      `json:"saveCard,omitempty"`
}

// SearchResponse is AuthSearchApi's answer.
type SearchResponse struct {
	ResultCode         string           `json:"resultCode"`
	ErrorMessageList   []string         `json:"errorMessageList,omitempty"`
	StatusCode         string           `json:"statusCode,omitempty"`
	FlowLevelID        string           `json:"flowLevelId,omitempty"`
	FlowLevelName      string           `json:"flowLevelName,omitempty"`
	CallerTelNo        string           `json:"callerTelNo,omitempty"`
	IncomingDatetime   string           `json:"incomingDatetime,omitempty"`
	AnyItem            []AnyItem        `json:"anyItem,omitempty"`
	AuthSuccessFlg     string           `json:"authSuccessFlg,omitempty"`
	SaveSuccessFlg     string           `json:"saveSuccessFlg,omitempty"`
	LastTransaction    *LastTransaction `json:"lastTransaction,omitempty"`
	TransactionHistory *History         `json:"transactionHistory,omitempty"`
}

// Result codes of both APIs.
const (
	ResultOK          = "0"
	ResultParam       = "30" // パラメータエラー
	ResultAuthParam   = "31" // auth block
	ResultSaveParam   = "32" // save block
	ResultNoReceipt   = "40" // 受付番号指定エラー (AuthSearchApi)
	ResultSystemError = "90"
)

// Status codes of AuthSearchApi.
const (
	StatusWaiting   = "0" // 処理前: no call yet
	StatusInCall    = "1" // 処理中
	StatusCompleted = "2" // 完了
)
