package store

import (
	"bytes"
	"os"
	"time"
)

// The time fence keeps "a code is accepted once" through a power loss
// although login updates are not synced one by one (docs/durability.md).
// meta/fence is a time F, synced before any login can accept a step that
// starts after F, and moved ahead of the clock in rare synced steps: to
// now+fenceAhead whenever it is less than fenceMargin ahead. meta/running
// holds the boot id while the database is open for writing and is removed
// by a clean Close. An Open that finds it on another boot (a power loss or
// a kernel crash, where the page cache holding the last logins may be
// gone) refuses every step that starts at or before F, by showing each
// user's TOTP.LastStep as at least that step: auth's replay rule then
// refuses those codes until the clock has moved past F. On the same boot
// (kill -9, a panic) the page cache kept every login: no refusal.
const (
	fenceAhead  = 75 * time.Second
	fenceMargin = 45 * time.Second
	// refuseGrace is how long the floor is kept after the fence: longer
	// than any step plus skew window.
	refuseGrace = 10 * time.Minute
	// defaultPeriod is the TOTP period for a token that names none.
	defaultPeriod = 30
)

const bootIDPath = "/proc/sys/kernel/random/boot_id"

// currentBootID names this boot of the machine; "" where unknown (then
// every unclean stop counts as a power loss).
func currentBootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// lostPower says whether a database whose meta/running is running was
// left by a power loss or crash of the machine: it was not closed, and
// not on this boot.
func lostPower(running []byte, boot string) bool {
	return running != nil && (boot == "" || string(running) != boot)
}

func period(t *TOTP) uint64 {
	if t.Period <= 0 {
		return defaultPeriod
	}
	return uint64(t.Period)
}

// stepStart is the Unix time at which step s of t begins.
func stepStart(t *TOTP, s uint64) int64 { return int64(s * period(t)) }

// applyFloor raises u's last step to the last one starting at or before
// floor (Unix seconds; 0 = none), so that those codes count as used.
func applyFloor(u *User, floor int64) {
	if floor <= 0 || u.TOTP == nil {
		return
	}
	if s := uint64(floor) / period(u.TOTP); s > u.TOTP.LastStep {
		u.TOTP.LastStep = s
	}
}
