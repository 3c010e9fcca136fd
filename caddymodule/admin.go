package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves paynorm's endpoints on Caddy's admin listener (loopback
// by default, never the API's):
//
//	GET /paynorm/dead_letters[?limit=N]
//
// lists, per open store, the webhook events the notifier gave up on
// (notify_max_attempts, notify_max_age), oldest first, with their last
// error. Caddy loads every admin.api module by itself; there is nothing to
// configure.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.paynorm",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/paynorm/dead_letters", Handler: caddy.AdminHandlerFunc(serveDeadLetters)}}
}

// deadLetter is one dead-lettered event as the admin API shows it.
type deadLetter struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Attempts  int             `json:"attempts"`
	CreatedAt time.Time       `json:"created_at"`
	DeadAt    time.Time       `json:"dead_at"`
	LastError string          `json:"last_error,omitempty"`
	Body      json.RawMessage `json:"body"`
}

// storeDeadLetters are the dead letters of one store.
type storeDeadLetters struct {
	Backend     string       `json:"backend"`
	Path        string       `json:"path,omitempty"`
	Addrs       []string     `json:"addrs,omitempty"`
	DeadLetters []deadLetter `json:"dead_letters"`
}

func serveDeadLetters(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit must be a positive integer")}
		}
		limit = n
	}
	var states []*storeState
	openStores.Range(func(_, v any) bool {
		states = append(states, v.(*storeState))
		return true
	})
	sort.Slice(states, func(i, j int) bool { return states[i].key < states[j].key })
	out := struct {
		Stores []storeDeadLetters `json:"stores"`
	}{Stores: []storeDeadLetters{}}
	for _, st := range states {
		evs, err := st.store.DeadEvents(r.Context(), limit)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("reading the %s store's dead letters: %v", st.backend, err)}
		}
		sd := storeDeadLetters{Backend: st.backend, Path: st.path, Addrs: st.addrs, DeadLetters: []deadLetter{}}
		for _, ev := range evs {
			body := json.RawMessage(ev.Body)
			if !json.Valid(body) {
				body, _ = json.Marshal(string(ev.Body))
			}
			sd.DeadLetters = append(sd.DeadLetters, deadLetter{ID: ev.ID, Type: ev.Type, Attempts: ev.Attempts, CreatedAt: ev.CreatedAt,
				DeadAt: ev.DeadAt, LastError: ev.LastError, Body: body})
		}
		out.Stores = append(out.Stores, sd)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// Interface guard
var _ caddy.AdminRouter = (*AdminAPI)(nil)
