package pgstore

import (
	"context"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.Keyring = (*Store)(nil)

// SubjectKey implements [es.Keyring.SubjectKey] with the SQL function
// subject_key (the login needs <schema>_keyholder, which <schema>_writer
// has by default).
//
// It always runs on the pool, also for a store bound to a transaction
// ([Store.WithTx]): a key it creates is committed before it is returned,
// so no personal field is ever encrypted with a key that a rollback could
// take back.
func (s *Store) SubjectKey(ctx context.Context, subject string, create bool) ([]byte, error) {
	if err := storekit.ValidateSubject(subject); err != nil {
		return nil, err
	}
	var key []byte
	if err := s.pool.QueryRow(ctx, s.sql.subjectKey, subject, create).Scan(&key); err != nil {
		return nil, fmt.Errorf("pgstore: reading the key of subject %q: %w", subject, interpretError(err))
	}
	if key == nil {
		return nil, fmt.Errorf("pgstore: key of subject %q: %w", subject, es.ErrNotFound)
	}
	return key, nil
}

// ForgetSubject implements [es.Keyring.ForgetSubject] with the SQL
// function forget_subject (the login needs <schema>_forgetter, which no
// role has by default). On a store bound to a transaction it runs in it:
// the key is deleted, and the erasure recorded, when the transaction
// commits. Until then the transaction holds the key's row: encoding
// personal data of the same subject meanwhile (its key is read on the
// pool) waits for it, so do not do both in one transaction.
func (s *Store) ForgetSubject(ctx context.Context, subject string) (bool, error) {
	if err := storekit.ValidateSubject(subject); err != nil {
		return false, err
	}
	var forgotten bool
	if err := s.db.QueryRow(ctx, s.sql.forgetSubject, subject).Scan(&forgotten); err != nil {
		return false, fmt.Errorf("pgstore: forgetting subject %q: %w", subject, interpretError(err))
	}
	return forgotten, nil
}
