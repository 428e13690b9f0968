package es

// Personal data and crypto-shredding: the keyring of data subjects, its
// cache in the registry, and the registry's context-taking codec calls
// that encrypt and decrypt personal fields. See [Registry] (Personal data)
// and [Keyring].

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/pgevent/es/internal/codec"
)

// Keyring keeps one secret key per data subject, for the personal fields
// of events ([Registry], Personal data). Forgetting a subject deletes its
// key for good: every personal field written for it, in every event,
// snapshot, replica and later backup, can then no longer be decrypted.
// pgstore (the table subject_keys, through SQL functions) and memstore
// implement it; give it to a registry with [Registry.SetKeyring].
type Keyring interface {
	// SubjectKey returns subject's key: 32 random bytes (an AES-256 key).
	// With create, a subject that has no key gets one (committed before it
	// is returned, so nothing is ever encrypted with a key that is not
	// stored); without, it returns an error wrapping [ErrNotFound].
	//
	// Errors: [ErrSubjectForgotten] for a forgotten subject (with or
	// without create: a forgotten subject never gets a key again);
	// [ErrInvalidArgument] for an empty subject id, one longer than
	// [MaxSubjectLength] bytes, or one with a NUL byte or invalid UTF-8.
	SubjectKey(ctx context.Context, subject string, create bool) ([]byte, error)

	// ForgetSubject deletes subject's key and records that the subject is
	// forgotten (pgstore: who and when, in the table subject_erasures). It
	// reports whether this call forgot it: false when it was already
	// forgotten. A subject with no key yet can be forgotten too: it will
	// never get one. There is no undo.
	//
	// Errors: [ErrInvalidArgument] as for SubjectKey.
	ForgetSubject(ctx context.Context, subject string) (forgotten bool, err error)
}

// MaxSubjectLength is the longest subject id accepted, in bytes.
const MaxSubjectLength = codec.MaxSubjectLength

// ErrSubjectForgotten is returned when a forgotten subject's key is asked
// for, and so when a personal field is encoded for a forgotten subject:
// nothing personal is written for a subject after it was forgotten.
// Decoding never returns it: an erased field decodes to its zero value.
var ErrSubjectForgotten = errors.New("es: subject forgotten")

// ErrNoKeyring is returned when an event with personal fields is encoded,
// or an encrypted field decoded, by a registry without a keyring
// ([Registry.SetKeyring]).
var ErrNoKeyring = errors.New("es: personal fields need a keyring (Registry.SetKeyring)")

// ErrCorruptPersonalField is returned when an encrypted personal field
// does not decrypt with its subject's key: it was damaged, or encrypted
// with a key that is not the subject's stored key. An erased field (its
// key deleted) is not an error.
var ErrCorruptPersonalField = errors.New("es: personal field cannot be decrypted")

// Encrypted is an encrypted personal field as an upcaster sees it in the
// map of a stored event's fields ([Upcaster]): an opaque value that the
// upcaster may move to another field name or drop, but not read or change.
// The registry decrypts it when it decodes the upcast event.
type Encrypted = codec.Sealed

// KeyringConfig configures how a registry uses its keyring. A nil
// *KeyringConfig uses every default.
type KeyringConfig struct {
	// CacheTTL is how long the registry keeps a subject's key (as a ready
	// cipher), or the fact that the subject has none, in memory after
	// asking the keyring, so that decoding a stream of events asks once.
	// It bounds how long "forget" takes to reach this process when the
	// subject is forgotten elsewhere (another process, SQL): until then
	// this process can still decrypt, and encrypt new fields with the
	// deleted key (which nobody else can decrypt). Forgetting through
	// [Registry.ForgetSubject] evicts the subject at once. A negative
	// value disables the cache (one keyring call per event with personal
	// fields). Defaults to one minute.
	CacheTTL time.Duration
	// CacheSize bounds the number of subjects cached. Defaults to 10,000.
	CacheSize int
}

const (
	defaultKeyCacheTTL  = time.Minute
	defaultKeyCacheSize = 10_000
)

// keyring is a registry's keyring with its cache.
type keyring struct {
	k    Keyring
	ttl  time.Duration // <= 0: no cache
	size int

	mu    sync.Mutex
	cache map[string]keyEntry
}

// keyEntry is what the keyring said of a subject.
type keyEntry struct {
	aead      cipher.AEAD // nil: no key (forgotten, or never had one)
	forgotten bool
	expires   time.Time
}

// SetKeyring makes the registry encrypt and decrypt personal fields with
// the keys of k (pgstore's or memstore's Store; give it the store on the
// pool, not one bound to a transaction). Call it at start-up, before
// encoding or decoding. config may be nil.
//
// It returns an error wrapping [ErrInvalidArgument] for a nil k or a
// negative CacheSize.
func (r *Registry) SetKeyring(k Keyring, config *KeyringConfig) error {
	if k == nil {
		return fmt.Errorf("%w: SetKeyring: nil keyring", ErrInvalidArgument)
	}
	var c KeyringConfig
	if config != nil {
		c = *config
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("%w: SetKeyring: negative CacheSize %d", ErrInvalidArgument, c.CacheSize)
	}
	c.CacheTTL = cmp.Or(c.CacheTTL, defaultKeyCacheTTL)
	c.CacheSize = cmp.Or(c.CacheSize, defaultKeyCacheSize)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = &keyring{k: k, ttl: c.CacheTTL, size: c.CacheSize, cache: map[string]keyEntry{}}
	return nil
}

// ForgetSubject forgets subject through the registry's keyring
// ([Keyring.ForgetSubject]) and drops it from the registry's cache at
// once. It reports whether this call forgot the subject. Without a
// keyring it returns [ErrNoKeyring].
func (r *Registry) ForgetSubject(ctx context.Context, subject string) (bool, error) {
	kr := r.keyring()
	if kr == nil {
		return false, ErrNoKeyring
	}
	if err := codec.CheckSubject(subject); err != nil {
		return false, fmt.Errorf("%w: forgetting a subject: %w", ErrInvalidArgument, err)
	}
	forgotten, err := kr.k.ForgetSubject(ctx, subject)
	if err != nil {
		return false, err
	}
	kr.mu.Lock()
	if kr.ttl > 0 {
		kr.cache[subject] = keyEntry{forgotten: true, expires: time.Now().Add(kr.ttl)}
	}
	kr.mu.Unlock()
	return forgotten, nil
}

func (r *Registry) keyring() *keyring {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys
}

// cipherFor returns subject's cipher (nil when it has no key), creating
// its key first with create.
func (kr *keyring) cipherFor(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	now := time.Now()
	if kr.ttl > 0 {
		kr.mu.Lock()
		e, ok := kr.cache[subject]
		kr.mu.Unlock()
		if ok && now.Before(e.expires) {
			switch {
			case e.aead != nil:
				return e.aead, nil
			case e.forgotten && create:
				return nil, fmt.Errorf("subject %q: %w", subject, ErrSubjectForgotten)
			case !create:
				return nil, nil
			}
			// No key yet: create one.
		}
	}
	key, err := kr.k.SubjectKey(ctx, subject, create)
	var e keyEntry
	switch {
	case err == nil:
		if len(key) != 32 {
			return nil, fmt.Errorf("es: keyring returned a key of %d bytes for subject %q, want 32", len(key), subject)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if e.aead, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	case errors.Is(err, ErrSubjectForgotten):
		if create {
			return nil, err
		}
		e.forgotten = true
	case errors.Is(err, ErrNotFound) && !create:
	default:
		return nil, err
	}
	if kr.ttl > 0 {
		e.expires = now.Add(kr.ttl)
		kr.mu.Lock()
		if len(kr.cache) >= kr.size {
			kr.evictLocked(now)
		}
		kr.cache[subject] = e
		kr.mu.Unlock()
	}
	return e.aead, nil
}

// evictLocked makes room in the cache: the expired entries go, and when
// that is not enough, an eighth of the others (map order: arbitrary ones).
func (kr *keyring) evictLocked(now time.Time) {
	for s, e := range kr.cache {
		if !now.Before(e.expires) {
			delete(kr.cache, s)
		}
	}
	drop := len(kr.cache) - kr.size + 1 + kr.size/8
	for s := range kr.cache {
		if drop <= 0 {
			break
		}
		delete(kr.cache, s)
		drop--
	}
}

// keyUse gives the codec the ciphers of one encode or decode call
// (codec.Keys), remembering the last subject's, and records the subjects
// whose fields it encrypted or decrypted.
type keyUse struct {
	kr       *keyring
	ctx      context.Context
	subject  string
	aead     cipher.AEAD
	subjects []string
}

func (u *keyUse) cipher(subject string, create bool) (cipher.AEAD, error) {
	if u.aead != nil && subject == u.subject {
		return u.aead, nil
	}
	if u.kr == nil {
		return nil, ErrNoKeyring
	}
	aead, err := u.kr.cipherFor(u.ctx, subject, create)
	if err != nil || aead == nil {
		return nil, err
	}
	u.subject, u.aead = subject, aead
	if !slices.Contains(u.subjects, subject) {
		u.subjects = append(u.subjects, subject)
	}
	return aead, nil
}

// Sealer implements codec.Keys.
func (u *keyUse) Sealer(subject string) (cipher.AEAD, error) { return u.cipher(subject, true) }

// Opener implements codec.Keys.
func (u *keyUse) Opener(subject string) (cipher.AEAD, error) { return u.cipher(subject, false) }

// EncodeOpts shapes a [Registry.EncodeContext] call. A nil *EncodeOpts is
// the zero value.
type EncodeOpts struct {
	// Subject is the data subject of the event's personal fields when the
	// event does not name one (its es:"subject" field is absent or empty).
	// A [Repository] encodes for the aggregate's stream id. Defaults to
	// none: encoding an event with personal fields and no subject fails.
	Subject string
}

// NewEventContext is [Registry.NewEvent] with a context for the keyring
// and options, as [Registry.EncodeContext]: the event it returns carries
// the schema version its type is registered at.
func (r *Registry) NewEventContext(ctx context.Context, event any, md *Metadata, opts *EncodeOpts) (NewEvent, error) {
	var subject string
	if opts != nil {
		subject = opts.Subject
	}
	et, data, _, err := r.encode(ctx, event, subject)
	if err != nil {
		return NewEvent{}, err
	}
	meta, err := EncodeMetadata(md)
	if err != nil {
		return NewEvent{}, err
	}
	return NewEvent{Type: et.name, SchemaVersion: et.version, Data: data, Metadata: meta}, nil
}

// EncodeContext is [Registry.Encode] with a context for the keyring and
// options: personal fields are encrypted for the subject the event names,
// else opts.Subject. Like Encode, it returns data in the shape of the
// schema version the type is registered at: a [NewEvent] built from it
// must carry that version ([Registry.SchemaVersion]), or use
// [Registry.NewEventContext], which sets it. Errors: those of Encode, and
// [ErrNoKeyring], [ErrSubjectForgotten], [ErrInvalidArgument] (no valid
// subject), or the keyring's own.
func (r *Registry) EncodeContext(ctx context.Context, event any, opts *EncodeOpts) (name string, data []byte, err error) {
	var subject string
	if opts != nil {
		subject = opts.Subject
	}
	et, data, _, err := r.encode(ctx, event, subject)
	if err != nil {
		return "", nil, err
	}
	return et.name, data, nil
}

// encode encodes event, encrypting its personal fields for the subject it
// names, else subject, and returns the subjects it encrypted for.
func (r *Registry) encode(ctx context.Context, event any, subject string) (et *eventType, data []byte, subjects []string, err error) {
	et, v, err := r.lookupValue(event)
	if err != nil {
		return nil, nil, nil, err
	}
	if !et.codec.Personal() {
		data, err = et.codec.Encode(v)
	} else {
		u := &keyUse{kr: r.keyring(), ctx: ctx}
		data, err = et.codec.EncodeWith(v, u, subject)
		subjects = u.subjects
	}
	if err != nil {
		if errors.Is(err, codec.ErrBadSubject) {
			err = fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		return nil, nil, nil, fmt.Errorf("encoding %q: %w", et.name, err)
	}
	return et, data, subjects, nil
}

// DecodeContext is [Registry.DecodeWith] with a context for the keyring.
// An encrypted personal field is decrypted with its subject's key; when
// that key is gone (the subject was forgotten) the field is left at its
// zero value and named in the event's es:"erased" field, and decoding
// goes on: an erased field is never an error. A field that does not
// decrypt is an error wrapping [ErrCorruptPersonalField]; an encrypted
// field without a keyring, [ErrNoKeyring].
func (r *Registry) DecodeContext(ctx context.Context, e Event, opts *DecodeOpts) (any, error) {
	v, _, err := r.decode(ctx, e, opts)
	return v, err
}

// decodePersonal decodes data into v with the codec of et, decrypting
// its personal fields, and returns the subjects it decrypted.
func (r *Registry) decodePersonal(ctx context.Context, et *eventType, data []byte, v reflect.Value) ([]string, error) {
	u := &keyUse{kr: r.keyring(), ctx: ctx}
	err := et.codec.DecodeWith(data, v, u)
	if errors.Is(err, codec.ErrBadSealed) {
		err = fmt.Errorf("%w: %w", ErrCorruptPersonalField, err)
	}
	return u.subjects, err
}
