package tickets

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// sharing is how a cache shares its apps' tokens and tickets with a fleet
// through storage (the record itself is store.go's): reading the record,
// waiting for a peer's lock, storing, putting a newer record back, and
// noticing that storage fails and comes back. Storage failing never stops
// signing: the callers go on from memory. It is safe for concurrent use.
type sharing struct {
	metrics     *cacheMetrics
	storageDown atomic.Bool // the last storage operation failed
}

// loadStored reads cfg's record, makes e learn its token, and returns its
// ticket and its token. The ticket is nil when the record has none, the
// token too when there is no record or it does not open (logged: it will be
// replaced); ok is false when storage failed (logged once until it works
// again).
func (s *sharing) loadStored(ctx context.Context, cfg appConfig, e *entry, log *zap.Logger) (t *Ticket, tok *accessToken, ok bool) {
	rec, err := cfg.store.load(ctx)
	switch {
	case err == nil:
		s.storageOK(log)
	case errors.Is(err, errNoRecord):
		s.storageOK(log)
		if err != errNoRecord {
			log.Warn("ignoring the stored ticket record; it will be replaced", zap.String("why", err.Error()))
		}
		return nil, nil, true
	default:
		s.storageFailed(err, log)
		return nil, nil, false
	}
	tok = rec.token()
	newest := e.learnToken(tok)
	if newest.value != rec.Token {
		return nil, tok, true
	}
	return rec.ticket(newest, cfg.refresh), tok, true
}

// lockPoll is how often a sidecar waiting for a peer's storage lock reads
// storage again: often enough to take up the peer's ticket within about a
// second, well inside any fetch timeout.
const lockPoll = time.Second

// lock takes cfg's storage lock and returns nil, nil. While a peer holds
// it, storage is read again every lockPoll: if the peer stored a ticket
// that usable accepts, lock returns it, without the lock. Otherwise err says
// why there is no lock: ctx ended, or storage failed.
func (s *sharing) lock(ctx context.Context, cfg appConfig, e *entry, usable func(*Ticket) bool, log *zap.Logger) (*Ticket, error) {
	began := time.Now()
	defer func() { s.metrics.lockWait.Observe(time.Since(began).Seconds()) }()
	for {
		wait, cancel := context.WithTimeout(ctx, min(lockPoll, cfg.poll))
		err := cfg.store.lock(wait)
		expired := wait.Err() != nil
		cancel()
		if err == nil || !expired || ctx.Err() != nil {
			return nil, err
		}
		if t, _, _ := s.loadStored(ctx, cfg, e, log); t != nil && usable(t) {
			return t, nil
		}
	}
}

func (s *sharing) save(ctx context.Context, st *ticketStore, rec storedRecord, log *zap.Logger) {
	if err := st.save(ctx, rec); err != nil {
		s.storageFailed(err, log)
		return
	}
	s.storageOK(log)
}

// restore stores t and its token for cfg's app, under the lock, if storage
// still holds no record that opens, or an older one.
func (s *sharing) restore(ctx context.Context, cfg appConfig, t *Ticket, log *zap.Logger) {
	if err := cfg.store.lock(ctx); err != nil {
		s.storageFailed(err, log)
		return
	}
	defer func() {
		if err := cfg.store.unlock(); err != nil {
			log.Warn("releasing the storage lock failed", zap.Error(err))
		}
	}()
	rec, err := cfg.store.load(ctx)
	if err == nil && !t.token.after(rec.token()) || err != nil && !errors.Is(err, errNoRecord) {
		return // a peer stored a newer one meanwhile, or storage failed
	}
	if err := cfg.store.save(ctx, record(t.token, t)); err != nil {
		s.storageFailed(err, log)
		return
	}
	s.storageOK(log)
	log.Info("stored the current ticket again", zap.Uint64("generation", t.token.gen))
}

// storageFailed notes that storage failed; the first failure after it
// worked is logged.
func (s *sharing) storageFailed(err error, log *zap.Logger) {
	s.metrics.storageErrors.Inc()
	if s.storageDown.CompareAndSwap(false, true) {
		log.Warn("storage unavailable; tickets are kept in memory only until it works again", zap.Error(err))
	}
}

func (s *sharing) storageOK(log *zap.Logger) {
	if s.storageDown.CompareAndSwap(true, false) {
		log.Info("storage available again")
	}
}
