//go:build !unix

package journal

import (
	"errors"
	"os"
	"time"
)

func lockFile(string, time.Duration) (*os.File, error) {
	return nil, errors.New("the journal store needs a Unix system (file locks); use the bolt or redis store")
}

func unlockFile(*os.File) {}

func syncDir(string) error { return nil }
