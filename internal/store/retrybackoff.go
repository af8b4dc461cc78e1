package store

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// The waits between a Policy's attempts: 50 ms doubling to 5 s, each one spread over
// ±retryJitter of that, so that the machines of a fleet whose mirror failed at one
// moment do not all retry at the next same moments (and again and again) but spread
// out. cenkalti/backoff (as restic uses) computes them.
const (
	backoffMin  = 50 * time.Millisecond
	backoffMax  = 5 * time.Second
	retryJitter = 0.25
)

// newRetryBackoff returns the wait sequence of one Policy.Do: each call of NextBackOff
// the next wait, within [n·(1−retryJitter), n·(1+retryJitter)] of the nominal wait n,
// min(backoffMin·2^i, backoffMax). It never stops on its own: Policy decides when to
// give up (Timeout, Attempts).
func newRetryBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     backoffMin,
		RandomizationFactor: retryJitter,
		Multiplier:          2,
		MaxInterval:         backoffMax,
	}
}
