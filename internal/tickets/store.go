package tickets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"
)

// This file keeps an app's access token and SIGN ticket in Caddy's storage,
// so that a fleet of sidecars shares one ticket and a restart does not fetch
// a new token: WeBank invalidates the previous token about a minute after a
// new one is fetched, so every extra fetch can break the running peers.
//
// The record is sealed with AES-256-GCM under a key derived from the app
// secret (HKDF-SHA256), with the storage key as additional data: whoever can
// read the storage but lacks the secret learns nothing usable, and a record
// copied under another app's key does not open.

// storedRecord is what is kept in storage, before sealing: the app's newest
// access token and, once it has been made, the SIGN ticket made with it. A
// token without a ticket tells peers that their ticket dies within a minute
// and lets any of them get a ticket without fetching yet another token.
type storedRecord struct {
	Token         string    `json:"token"`
	TokenFetched  time.Time `json:"token_fetched"`
	TokenLifeMS   int64     `json:"token_life_ms"`
	Gen           uint64    `json:"gen"`              // 1 for the app's first token, +1 for each token fetched since
	By            string    `json:"by"`               // the instance that fetched the token (host/pid)
	Forced        bool      `json:"forced,omitempty"` // the token replaced one WeBank rejected, or was forced
	Ticket        string    `json:"ticket,omitempty"`
	TicketFetched time.Time `json:"ticket_fetched"`
	TicketLifeMS  int64     `json:"ticket_life_ms,omitempty"`
}

const sealPrefix = "webank_sign sealed v1\n"

// storageTimeout bounds one read or write of the record: a storage that
// hangs (a black-holed Redis, a stuck network mount) counts as failing, and
// the fetch goes on without it, instead of spending the fetch timeout.
const storageTimeout = 3 * time.Second

// errNoRecord means there is no usable record: none stored, or one that does
// not open (another secret, corruption, a truncated write).
var errNoRecord = errors.New("no stored ticket")

// ticketStore is one app's record and lock in Caddy's storage. It is safe
// for concurrent use if the storage is, as certmagic requires.
type ticketStore struct {
	storage  certmagic.Storage
	key      string // where the record is stored
	lockName string // the storage lock that serialises fetches across the fleet
	aead     cipher.AEAD
}

func newTicketStore(storage certmagic.Storage, c Credentials) (*ticketStore, error) {
	sum := sha256.Sum256([]byte(c.BaseURL))
	base := hex.EncodeToString(sum[:8])
	key, err := hkdf.Key(sha256.New, []byte(c.Secret), []byte("caddy-webanksign ticket record"), c.AppID+"\x00"+c.BaseURL, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the record key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &ticketStore{
		storage:  storage,
		key:      "webank_sign/" + c.AppID + "/" + base + ".ticket",
		lockName: "webank_sign_" + c.AppID + "_" + base,
		aead:     aead,
	}, nil
}

// load returns the stored record. It returns errNoRecord, wrapped with the
// reason, if there is none or it does not open, and other errors when the
// storage itself fails.
func (s *ticketStore) load(ctx context.Context) (storedRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	b, err := s.storage.Load(ctx, s.key)
	if errors.Is(err, fs.ErrNotExist) {
		return storedRecord{}, errNoRecord
	}
	if err != nil {
		return storedRecord{}, fmt.Errorf("loading the ticket record: %w", err)
	}
	rec, err := s.open(b)
	if err != nil {
		return storedRecord{}, fmt.Errorf("%w: the stored record does not open (%v)", errNoRecord, err)
	}
	return rec, nil
}

// save seals rec and stores it.
func (s *ticketStore) save(ctx context.Context, rec storedRecord) error {
	b, err := s.seal(rec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	if err := s.storage.Store(ctx, s.key, b); err != nil {
		return fmt.Errorf("storing the ticket record: %w", err)
	}
	return nil
}

// lock takes the app's storage lock, waiting no longer than ctx allows.
func (s *ticketStore) lock(ctx context.Context) error {
	if err := s.storage.Lock(ctx, s.lockName); err != nil {
		return fmt.Errorf("taking the storage lock: %w", err)
	}
	return nil
}

// unlock releases the lock. It does not use the caller's context: the lock
// must be released even if the fetch it guarded timed out.
func (s *ticketStore) unlock() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.storage.Unlock(ctx, s.lockName)
}

func (s *ticketStore) seal(rec storedRecord) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sealPrefix)+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out = append(out, sealPrefix...)
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(s.key)), nil
}

func (s *ticketStore) open(b []byte) (storedRecord, error) {
	var rec storedRecord
	if len(b) < len(sealPrefix) || string(b[:len(sealPrefix)]) != sealPrefix {
		return rec, errors.New("not a sealed record")
	}
	b = b[len(sealPrefix):]
	if len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return rec, errors.New("truncated")
	}
	nonce, sealed := b[:s.aead.NonceSize()], b[s.aead.NonceSize():]
	plain, err := s.aead.Open(nil, nonce, sealed, []byte(s.key))
	if err != nil {
		return rec, errors.New("authentication failed: another secret, or tampered with")
	}
	if err := json.Unmarshal(plain, &rec); err != nil || rec.Token == "" || rec.TokenLifeMS <= 0 ||
		(rec.Ticket != "" && rec.TicketLifeMS <= 0) {
		return storedRecord{}, errors.New("sealed content is not a ticket record")
	}
	return rec, nil
}

// record is t's token and t as they are kept in storage; with t nil, the
// token alone.
func record(tok *accessToken, t *Ticket) storedRecord {
	r := storedRecord{Token: tok.value, TokenFetched: tok.fetched, TokenLifeMS: tok.life.Milliseconds(), Gen: tok.gen, By: tok.by, Forced: tok.forced}
	if t != nil {
		r.Ticket, r.TicketFetched, r.TicketLifeMS = t.value, t.fetched, t.life.Milliseconds()
	}
	return r
}

// token returns the record's access token, its life capped at WeBank's
// maximum.
func (r storedRecord) token() *accessToken {
	return &accessToken{
		value: r.Token, gen: r.Gen, by: r.By, fetched: r.TokenFetched, forced: r.Forced,
		life: min(time.Duration(r.TokenLifeMS)*time.Millisecond, MaxTokenLife),
	}
}

// ticket returns the record's ticket, made with tok (the record's token, or
// the same token as the entry knows it), or nil if the record has none.
func (r storedRecord) ticket(tok *accessToken, refresh time.Duration) *Ticket {
	if r.Ticket == "" {
		return nil
	}
	life := min(time.Duration(r.TicketLifeMS)*time.Millisecond, MaxTicketLife)
	return newTicket(r.Ticket, r.TicketFetched, life, tok, refresh)
}
