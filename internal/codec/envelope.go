package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The es repository stores an aggregate's state in an envelope that lets
// a load tell a damaged snapshot from a good one: the msgpack map
//
//	{"crc32c": <uint32>, "state": <the aggregate's state, verbatim>}
//
// whose checksum is CRC-32C (Castagnoli) over the snapshot's version (8
// bytes, big-endian) followed by the state. When the state is msgpack (as
// package snapshot writes it) the whole envelope is msgpack too, so
// es.msgpack_to_jsonb shows it in SQL.
//
// A state holding personal data is encrypted (see [SealPersonal]) and the
// envelope then names it "personal" instead of "state":
//
//	{"crc32c": <uint32>, "personal": <an ExtPersonal value>}
var (
	envelopeHeader   = []byte("\x82\xa6crc32c\xce")
	envelopeState    = []byte("\xa5state")
	envelopePersonal = []byte("\xa8personal")
	crc32c           = crc32.MakeTable(crc32.Castagnoli)
)

// envelopeLen is the length of an envelope around an empty state.
var envelopeLen = len(envelopeHeader) + 4 + len(envelopeState)

// Seal wraps state, an aggregate's state at version, in the envelope.
func Seal(version int64, state []byte) []byte {
	out := make([]byte, 0, envelopeLen+len(state))
	out = append(out, envelopeHeader...)
	out = binary.BigEndian.AppendUint32(out, stateChecksum(version, state))
	out = append(out, envelopeState...)
	return append(out, state...)
}

// SealPersonal wraps sealed, an aggregate's state at version encrypted as
// one ExtPersonal value, in the envelope.
func SealPersonal(version int64, sealed []byte) []byte {
	out := make([]byte, 0, len(envelopeHeader)+4+len(envelopePersonal)+len(sealed))
	out = append(out, envelopeHeader...)
	out = binary.BigEndian.AppendUint32(out, stateChecksum(version, sealed))
	out = append(out, envelopePersonal...)
	return append(out, sealed...)
}

// OpenAny is [Open] that also opens the envelope of [SealPersonal]: it
// returns the state, or with personal true the encrypted state.
func OpenAny(version int64, sealed []byte) (state []byte, personal bool, err error) {
	n := len(envelopeHeader) + 4 + len(envelopePersonal)
	if len(sealed) < n || string(sealed[:len(envelopeHeader)]) != string(envelopeHeader) ||
		string(sealed[len(envelopeHeader)+4:n]) != string(envelopePersonal) {
		state, err := Open(version, sealed)
		return state, false, err
	}
	want := binary.BigEndian.Uint32(sealed[len(envelopeHeader):])
	state = sealed[n:]
	if got := stateChecksum(version, state); got != want {
		return nil, false, fmt.Errorf("%w: checksum %08x, want %08x (for version %d)", ErrBadEnvelope, got, want, version)
	}
	return state, true, nil
}

// ErrBadEnvelope is wrapped by the errors of [Open].
var ErrBadEnvelope = errors.New("not an intact snapshot envelope")

// Open returns the state sealed in sealed at version, or an error wrapping
// [ErrBadEnvelope] when sealed is not an intact envelope for that version.
func Open(version int64, sealed []byte) ([]byte, error) {
	if len(sealed) < envelopeLen || string(sealed[:len(envelopeHeader)]) != string(envelopeHeader) ||
		string(sealed[len(envelopeHeader)+4:envelopeLen]) != string(envelopeState) {
		return nil, fmt.Errorf("%w: no envelope", ErrBadEnvelope)
	}
	want := binary.BigEndian.Uint32(sealed[len(envelopeHeader):])
	state := sealed[envelopeLen:]
	if got := stateChecksum(version, state); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x (for version %d)", ErrBadEnvelope, got, want, version)
	}
	return state, nil
}

func stateChecksum(version int64, state []byte) uint32 {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(version))
	return crc32.Update(crc32.Checksum(v[:], crc32c), crc32c, state)
}
