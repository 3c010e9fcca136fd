package e2e

import "time"

func waitShort() { time.Sleep(100 * time.Millisecond) }
