package tickets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file is what operators see and do: each app's status, whether it is
// ready to sign, and a forced refresh.

// AppStatus is what the cache shows of one app. It holds no secret: the
// ticket appears only as a short fingerprint.
type AppStatus struct {
	AppID           string       `json:"app_id"`
	BaseURL         string       `json:"base_url"`
	State           string       `json:"state"` // valid, refreshing, refresh_failing, no_ticket, storage_degraded
	Generation      uint64       `json:"generation,omitempty"`
	FetchedBy       string       `json:"fetched_by,omitempty"`
	TicketAge       float64      `json:"ticket_age_seconds"`
	RemainingLife   float64      `json:"remaining_life_seconds"`
	NextRefresh     *time.Time   `json:"next_refresh,omitempty"`
	Fingerprint     string       `json:"ticket_fingerprint,omitempty"`
	LastError       *ErrorStatus `json:"last_error,omitempty"`
	StorageDegraded bool         `json:"storage_degraded"`
}

// ErrorStatus is the last failed fetch of an app, kept after recovery.
type ErrorStatus struct {
	Class   string    `json:"class"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// Status returns the state of every registered app, in app_id order.
func (c *Cache) Status() []AppStatus {
	now := c.now()
	cfgs := c.current()
	out := make([]AppStatus, 0, len(cfgs))
	for key, cfg := range cfgs {
		st := AppStatus{AppID: cfg.creds.AppID, BaseURL: cfg.creds.BaseURL, State: "no_ticket",
			StorageDegraded: cfg.store != nil && c.storageDown.Load()}
		if e := c.peek(key); e != nil {
			fillStatus(&st, e, now)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b AppStatus) int {
		if a.AppID != b.AppID {
			return strings.Compare(a.AppID, b.AppID)
		}
		return strings.Compare(a.BaseURL, b.BaseURL)
	})
	return out
}

func fillStatus(st *AppStatus, e *entry, now time.Time) {
	t := e.cur.Load()
	fs := e.state()
	failing := fs.failures > 0
	if fail := fs.lastFailure; !fail.at.IsZero() {
		st.LastError = &ErrorStatus{fail.class, fail.msg, fail.at}
	}
	if t != nil {
		next := t.refreshAt
		if failing {
			next = fs.retryAt
		}
		st.Generation, st.FetchedBy, st.Fingerprint = t.token.gen, t.token.by, fingerprint(t.value)
		st.TicketAge = now.Sub(t.fetched).Seconds()
		st.RemainingLife = max(0, t.expires.Sub(now).Seconds())
		st.NextRefresh = &next
	}
	switch {
	case t == nil || !now.Before(t.expires):
		st.State = "no_ticket"
	case failing:
		st.State = "refresh_failing"
	case st.StorageDegraded:
		st.State = "storage_degraded"
	case e.busy.Load():
		st.State = "refreshing"
	default:
		st.State = "valid"
	}
}

// AppReadiness says whether one app can sign now.
type AppReadiness struct {
	AppID         string  `json:"app_id"`
	BaseURL       string  `json:"base_url"`
	Ready         bool    `json:"ready"`
	RemainingLife float64 `json:"remaining_life_seconds"`
	Reason        string  `json:"reason,omitempty"`
}

// Readiness reports, for every registered app in key order, whether it has
// a ticket with more than margin of life left. An app with no ticket gets
// one fetched (once, shared with requests), so that a readiness probe also
// warms the cache up; but an app not in the cache while the cache is full
// counts as ready, and is not loaded: a probe must never evict. Readiness
// does not mark apps used, so probes do not keep idle apps in memory.
func (c *Cache) Readiness(ctx context.Context, margin time.Duration) []AppReadiness {
	cfgs := c.current()
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]AppReadiness, 0, len(keys))
	for _, key := range keys {
		cfg := cfgs[key]
		a := AppReadiness{AppID: cfg.creds.AppID, BaseURL: cfg.creds.BaseURL}
		e := c.peek(key)
		if e == nil && !c.hasRoom() {
			a.Ready, a.Reason = true, "not kept in memory (see cache_size): its ticket is loaded when a request needs it"
			out = append(out, a)
			continue
		}
		var t *Ticket
		var err error
		if e != nil {
			t = e.usable(c.now())
		}
		if t == nil {
			t, err = c.ticket(ctx, key)
		}
		if err != nil {
			a.Reason = "no ticket: " + describeFailure(err)
		} else if left := t.expires.Sub(c.now()); left <= margin {
			a.RemainingLife = left.Seconds()
			a.Reason = fmt.Sprintf("the ticket has %v left, not more than the margin %v", left.Round(time.Second), margin)
		} else {
			a.Ready, a.RemainingLife = true, left.Seconds()
		}
		out = append(out, a)
	}
	return out
}

// describeFailure says what a failure to get a ticket was, for readiness
// answers, which a cluster's probes reach: the step and class of a failed
// fetch, never the error's own text, which may quote WeBank or name an
// internal address (Status, for operators, keeps it).
func describeFailure(err error) string {
	if fe, ok := errors.AsType[*FetchError](err); ok {
		return "fetching the " + fe.Step + " failed (" + fe.Class + ")"
	}
	return "(" + errClass(err) + ")"
}

// TooSoonError refuses a forced refresh that comes too soon after the last.
type TooSoonError struct{ RetryIn time.Duration }

func (e *TooSoonError) Error() string {
	return "the ticket was replaced by force less than " + minForcedInterval.String() +
		" ago; try again in " + e.RetryIn.Round(time.Second).String()
}

// ForceRefresh replaces the ticket of every registered app with appID by
// one made with a new token, through the usual single flight and storage
// lock (so a peer's fresher ticket is adopted instead of fetching). It
// refuses with a *TooSoonError within a minute of the last forced or
// rejection-driven replacement, so that it cannot rotate the token in a
// loop. found is false if no registration has appID.
func (c *Cache) ForceRefresh(ctx context.Context, appID string) (found bool, err error) {
	var keys []string
	for k, cfg := range c.current() {
		if cfg.creds.AppID == appID {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return false, nil
	}
	for _, key := range keys {
		base, err := c.entry(key).force(c.now())
		if err != nil {
			return true, err
		}
		// A forced refresh may join a flight already under way for another
		// reason, whose ticket need not be newer: then it runs again.
		for attempt := 0; attempt < 2; attempt++ {
			ch := c.flight.DoChan(key, func() (any, error) {
				return c.refresh(key, kindForced, func(t *Ticket, _ time.Time) bool { return t.token.gen > base })
			})
			select {
			case res := <-ch:
				if res.Err != nil {
					return true, res.Err
				}
				if res.Val.(*Ticket).token.gen > base {
					attempt = 2
				}
			case <-ctx.Done():
				return true, ctx.Err()
			}
		}
	}
	return true, nil
}
