package memstore

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.Keyring = (*Store)(nil)

// SubjectKey implements [es.Keyring.SubjectKey]: keys are random and held
// in memory, and a forgotten subject's key is dropped, as pgstore's
// subject_keys table does.
func (s *Store) SubjectKey(ctx context.Context, subject string, create bool) ([]byte, error) {
	if err := storekit.ValidateSubject(subject); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: reading the key of subject %q: %w", subject, err)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if _, ok := s.forgotten[subject]; ok {
		return nil, fmt.Errorf("memstore: subject %q: %w", subject, es.ErrSubjectForgotten)
	}
	key, ok := s.keys[subject]
	if !ok {
		if !create {
			return nil, fmt.Errorf("memstore: key of subject %q: %w", subject, es.ErrNotFound)
		}
		key = make([]byte, 32)
		_, _ = rand.Read(key) // never fails (crypto/rand)
		if s.keys == nil {
			s.keys = map[string][]byte{}
		}
		s.keys[subject] = key
	}
	return append([]byte(nil), key...), nil
}

// ForgetSubject implements [es.Keyring.ForgetSubject].
func (s *Store) ForgetSubject(ctx context.Context, subject string) (bool, error) {
	if err := storekit.ValidateSubject(subject); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memstore: forgetting subject %q: %w", subject, err)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if _, ok := s.forgotten[subject]; ok {
		return false, nil
	}
	if key, ok := s.keys[subject]; ok {
		clear(key)
		delete(s.keys, subject)
	}
	if s.forgotten == nil {
		s.forgotten = map[string]struct{}{}
	}
	s.forgotten[subject] = struct{}{}
	return true, nil
}
