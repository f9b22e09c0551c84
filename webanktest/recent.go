package webanktest

import "sync"

// Bounds of the recentSets.
const (
	maxNonces  = 1 << 16 // recent nonces remembered to detect reuse
	maxFaceIDs = 1 << 16 // recent faceIds remembered for the login page
)

// recentSet remembers the last keys added to it, such as app ids and
// nonces, to detect reuse. It is safe for concurrent use.
type recentSet struct {
	mu   sync.Mutex          // protects seen, ring and next
	seen map[string]struct{} // keys of ring's non-empty entries
	ring []string            // the oldest is overwritten
	next int                 // index in ring of the next entry to write
}

func newRecentSet(size int) *recentSet {
	return &recentSet{seen: make(map[string]struct{}, size), ring: make([]string, size)}
}

// add records key and reports whether it was new.
func (s *recentSet) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.seen, old)
	}
	s.ring[s.next] = key
	s.seen[key] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
	return true
}

// has reports whether key is remembered.
func (s *recentSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[key]
	return ok
}
