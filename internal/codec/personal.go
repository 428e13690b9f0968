package codec

// Personal fields: the top-level fields of an event type tagged
// `es:"personal"` are written encrypted, each as one msgpack extension
// value (type ExtPersonal) whose data is
//
//	format (1 byte, 1) | subject length (2 bytes, big-endian) | subject |
//	nonce (12 bytes) | AES-GCM ciphertext of the field's msgpack, with its tag
//
// The first three parts are the AES-GCM additional data, so a value cannot
// be moved to another subject. The subject is in the clear so that the
// value can be decrypted with nothing but its subject's key, and so that
// SQL (msgpack_to_jsonb) can show whose it is without the key.

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/pgevent/es/internal/sqlcheck"
)

// ExtPersonal is the msgpack extension type of an encrypted personal field.
const ExtPersonal int8 = 80

const (
	// sealFormat is the first byte of an encrypted field: AES-GCM with a
	// 12-byte random nonce and a 16-byte tag.
	sealFormat = 1
	nonceSize  = 12
	tagSize    = 16
	// MaxSubjectLength is the longest subject id, in bytes (as stream ids).
	MaxSubjectLength = 1000
)

// Keys gives the codec the ciphers of subjects' personal fields.
type Keys interface {
	// Sealer returns the cipher that encrypts subject's fields, creating
	// the subject's key when it has none.
	Sealer(subject string) (cipher.AEAD, error)
	// Opener returns the cipher that decrypts subject's fields, or nil
	// when the subject's key is gone (forgotten): the field is erased.
	Opener(subject string) (cipher.AEAD, error)
}

// ErrNoKeys is wrapped by the errors of encoding a personal field, or
// decoding an encrypted one, without [Keys].
var ErrNoKeys = errors.New("no keyring to encrypt or decrypt personal fields with")

// ErrBadSubject is wrapped by the error of encoding a personal field of an
// event that names no subject, or a subject id that cannot be stored.
var ErrBadSubject = errors.New("no valid subject for the personal fields")

// ErrBadSealed is wrapped by the error of decoding an encrypted field that
// is malformed or does not decrypt with its subject's key (damaged, or
// encrypted with another key).
var ErrBadSealed = errors.New("encrypted personal field cannot be decrypted")

// Sealed is an encrypted personal field as a generic map (what upcasters
// see) holds it: the whole msgpack extension value, written back as it is.
type Sealed []byte

// fieldRole is what the es tag of a top-level field makes of it.
type fieldRole uint8

const (
	rolePlain    fieldRole = iota
	rolePersonal           // `es:"personal"`: encrypted
	roleSubject            // `es:"subject"`: names the subject
	roleErased             // `es:"erased"`: set when a personal field was erased; not encoded
)

// parseRole reads the es tag of field f of t.
func parseRole(t reflect.Type, f reflect.StructField) (fieldRole, error) {
	tag, ok := f.Tag.Lookup("es")
	if !ok {
		return rolePlain, nil
	}
	switch tag {
	case "personal":
		return rolePersonal, nil
	case "subject":
		if f.Type != uuidType && f.Type.Kind() != reflect.String {
			return 0, fmt.Errorf("%w: es:\"subject\" field %s.%s is a %s; want a string or a uuid.UUID", ErrUnsupported, t, f.Name, f.Type)
		}
		return roleSubject, nil
	case "erased":
		if f.Type.Kind() != reflect.Bool && f.Type != reflect.TypeFor[[]string]() {
			return 0, fmt.Errorf("%w: es:\"erased\" field %s.%s is a %s; want a bool or a []string", ErrUnsupported, t, f.Name, f.Type)
		}
		return roleErased, nil
	}
	return 0, fmt.Errorf("%w: es tag %q on %s.%s (want personal, subject or erased)", ErrUnsupported, tag, t, f.Name)
}

// checkNestedTags returns an error for an es tag on a field of a struct
// nested in top (but for top's inlined embedded structs, whose fields are
// top's), and reports whether top contains itself.
func checkNestedTags(top reflect.Type) (containsItself bool, err error) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, atTop bool) error
	walk = func(t reflect.Type, atTop bool) error {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return walk(t.Elem(), false)
		case reflect.Map:
			if err := walk(t.Key(), false); err != nil {
				return err
			}
			return walk(t.Elem(), false)
		case reflect.Struct:
		default:
			return nil
		}
		if !atTop {
			if t == top {
				containsItself = true
			}
			if seen[t] {
				return nil
			}
			seen[t] = true
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
			if tag, ok := f.Tag.Lookup("es"); ok && !atTop {
				return fmt.Errorf("%w: es:%q on field %s of %s, which is not the event type %s: tag the field of %s that holds it",
					ErrUnsupported, tag, f.Name, t, top, top)
			}
			inline := f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct
			if err := walk(f.Type, atTop && inline); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(top, true)
	return containsItself, err
}

// personalCodec encodes and decodes a top-level struct with personal
// fields.
type personalCodec struct {
	fields  []structField // every encoded field, personal ones included
	byName  map[string]*structField
	subject *structField // nil when the type has no es:"subject" field
	erased  *structField // nil when the type has no es:"erased" field
}

// newPersonalCodec returns the codec of the top-level fields, or nil when
// none has an es tag.
func newPersonalCodec(t reflect.Type, fields []structField) (*personalCodec, error) {
	p := &personalCodec{byName: map[string]*structField{}}
	tagged, subjects := false, 0
	for i := range fields {
		f := fields[i]
		switch f.role {
		case rolePlain:
		case roleErased:
			if p.erased != nil {
				return nil, fmt.Errorf("%w: %s has two es:\"erased\" fields", ErrUnsupported, t)
			}
			p.erased = &f
			tagged = true
			continue
		case roleSubject:
			if subjects++; subjects > 1 {
				return nil, fmt.Errorf("%w: %s has two es:\"subject\" fields", ErrUnsupported, t)
			}
			tagged = true
		case rolePersonal:
			tagged = true
		}
		p.fields = append(p.fields, f)
	}
	if !tagged {
		return nil, nil
	}
	for i := range p.fields {
		f := &p.fields[i]
		p.byName[f.name] = f
		if f.role == roleSubject {
			p.subject = f
		}
	}
	return p, nil
}

// subjectOf returns the subject v names in its es:"subject" field, else
// fallback.
func (p *personalCodec) subjectOf(v reflect.Value, fallback string) string {
	if p.subject == nil {
		return fallback
	}
	fv := v.FieldByIndex(p.subject.index)
	if fv.Type() == uuidType {
		if fv.IsZero() {
			return fallback
		}
		var buf [38]byte
		var u [16]byte
		reflect.Copy(reflect.ValueOf(u[:]), fv)
		return uuidString(buf[:0], u)
	}
	if s := fv.String(); s != "" {
		return s
	}
	return fallback
}

// uuidString appends the canonical form of u to buf and returns it.
func uuidString(buf []byte, u [16]byte) string {
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf = append(buf, '-')
		}
		buf = append(buf, hexDigits[x>>4], hexDigits[x&0x0f])
	}
	return string(buf)
}

// CheckSubject returns an error for a subject id that cannot be stored:
// empty, longer than MaxSubjectLength bytes, NUL or invalid UTF-8.
func CheckSubject(subject string) error {
	switch {
	case subject == "":
		return errors.New("empty subject id")
	case len(subject) > MaxSubjectLength:
		return fmt.Errorf("subject id of %d bytes, more than %d", len(subject), MaxSubjectLength)
	case !sqlcheck.Text(subject):
		return errors.New("subject id contains a NUL byte or invalid UTF-8")
	}
	return nil
}

func (p *personalCodec) encode(e *msgpack.Encoder, v reflect.Value, keys Keys, fallback string) error {
	n := 0
	for i := range p.fields {
		if !p.fields[i].omitEmpty || !isEmptyValue(v.FieldByIndex(p.fields[i].index)) {
			n++
		}
	}
	if err := e.EncodeMapLen(n); err != nil {
		return err
	}
	var (
		aead    cipher.AEAD
		subject string
		scratch *pooledEncoder
	)
	defer func() {
		if scratch != nil {
			releaseEncoder(scratch)
		}
	}()
	for i := range p.fields {
		f := &p.fields[i]
		fv := v.FieldByIndex(f.index)
		if f.omitEmpty && isEmptyValue(fv) {
			continue
		}
		if err := e.EncodeString(f.name); err != nil {
			return err
		}
		// An empty personal value (zero, or an empty string, slice or map)
		// holds nothing to hide: it is written as it is, so that events of
		// a forgotten subject without personal values can still be written.
		if f.role != rolePersonal || isEmptyValue(fv) {
			if err := f.codec.enc(e, fv); err != nil {
				return fmt.Errorf("field %s: %w", f.name, err)
			}
			continue
		}
		if aead == nil {
			if keys == nil {
				return fmt.Errorf("personal field %s: %w", f.name, ErrNoKeys)
			}
			subject = p.subjectOf(v, fallback)
			if subject == "" {
				return fmt.Errorf("personal field %s: %w: the event's es:\"subject\" field is empty and it is encoded for no subject (a repository encodes it for its stream)", f.name, ErrBadSubject)
			}
			if err := CheckSubject(subject); err != nil {
				return fmt.Errorf("personal field %s: %w: %w", f.name, ErrBadSubject, err)
			}
			var err error
			if aead, err = keys.Sealer(subject); err != nil {
				return fmt.Errorf("personal field %s: %w", f.name, err)
			}
			scratch = acquireEncoder()
		}
		scratch.buf.Reset()
		if err := f.codec.enc(scratch.enc, fv); err != nil {
			return fmt.Errorf("field %s: %w", f.name, err)
		}
		scratch.scratch = AppendSealed(scratch.scratch[:0], aead, subject, scratch.buf.Bytes())
		if err := e.EncodeExtHeader(ExtPersonal, len(scratch.scratch)); err != nil {
			return err
		}
		if _, err := e.Writer().Write(scratch.scratch); err != nil {
			return err
		}
	}
	return nil
}

// AppendSealed appends the data of an ExtPersonal value holding plaintext,
// encrypted for subject with aead (a fresh random nonce), to dst.
func AppendSealed(dst []byte, aead cipher.AEAD, subject string, plaintext []byte) []byte {
	start := len(dst)
	dst = append(dst, sealFormat)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(subject)))
	dst = append(dst, subject...)
	aad := len(dst)
	var nonce [nonceSize]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], plaintext, dst[start:aad])
}

// SealedSubject returns the subject of the data of an ExtPersonal value,
// or an error wrapping ErrBadSealed when it is malformed.
func SealedSubject(data []byte) (string, error) {
	if len(data) < 3 || data[0] != sealFormat {
		return "", fmt.Errorf("%w: unknown format", ErrBadSealed)
	}
	n := int(binary.BigEndian.Uint16(data[1:3]))
	if len(data) < 3+n+nonceSize+tagSize {
		return "", fmt.Errorf("%w: %d bytes, too short", ErrBadSealed, len(data))
	}
	return string(data[3 : 3+n]), nil
}

// OpenSealed decrypts the data of an ExtPersonal value of subject with
// aead, appending the plaintext to dst.
func OpenSealed(dst []byte, aead cipher.AEAD, subject string, data []byte) ([]byte, error) {
	head := 3 + len(subject)
	pt, err := aead.Open(dst, data[head:head+nonceSize], data[head+nonceSize:], data[:head])
	if err != nil {
		return nil, fmt.Errorf("%w (subject %q): %w", ErrBadSealed, subject, err)
	}
	return pt, nil
}

// decodeState is what decoding one event found, and its scratch buffers.
type decodeState struct {
	erased []string // the personal fields that were erased
	// buf holds an encrypted value's data, then its plaintext.
	buf *[]byte
}

// scratchPool recycles the buffers of decodeState.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (p *personalCodec) decode(d *msgpack.Decoder, v reflect.Value, keys Keys) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	if n < 0 {
		v.SetZero()
		return nil
	}
	var st decodeState
	defer func() {
		if st.buf != nil && cap(*st.buf) <= 64<<10 {
			scratchPool.Put(st.buf)
		}
	}()
	var buf [64]byte
	for range n {
		k, err := readStringTemp(d, buf[:])
		if err != nil {
			return err
		}
		f, ok := p.byName[string(k)]
		if !ok {
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		fv := v.FieldByIndex(f.index)
		if f.role == rolePersonal {
			err = p.decodePersonal(d, f, fv, keys, &st)
		} else {
			err = f.codec.dec(d, fv)
		}
		if err != nil {
			return fmt.Errorf("field %s: %w", f.name, err)
		}
	}
	if p.erased != nil && len(st.erased) > 0 {
		fv := v.FieldByIndex(p.erased.index)
		if fv.Kind() == reflect.Bool {
			fv.SetBool(true)
		} else {
			fv.Set(reflect.ValueOf(st.erased))
		}
	}
	return nil
}

// decodePersonal decodes a personal field: an encrypted value is
// decrypted (or, its key gone, left zero and recorded as erased); a plain
// one (written before the field was personal, or from SQL) is decoded as
// it is.
func (p *personalCodec) decodePersonal(d *msgpack.Decoder, f *structField, fv reflect.Value, keys Keys, st *decodeState) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsExt(c) {
		return f.codec.dec(d, fv)
	}
	id, n, err := d.DecodeExtHeader()
	if err != nil {
		return err
	}
	if st.buf == nil {
		st.buf = scratchPool.Get().(*[]byte)
	}
	b := (*st.buf)[:0]
	if id != ExtPersonal { // another extension (a time written in the clear)
		b = appendExtHeader(b, c, id, n)
	}
	head := len(b)
	b = slices.Grow(b, n)[:head+n]
	*st.buf = b
	if err := d.ReadFull(b[head:]); err != nil {
		return err
	}
	if id != ExtPersonal {
		return decodeWith(f.codec.dec, b, fv)
	}
	data := b
	subject, err := SealedSubject(data)
	if err != nil {
		return err
	}
	if keys == nil {
		return fmt.Errorf("encrypted personal field of subject %q: %w", subject, ErrNoKeys)
	}
	aead, err := keys.Opener(subject)
	if err != nil {
		return fmt.Errorf("subject %q: %w", subject, err)
	}
	if aead == nil {
		fv.SetZero()
		st.erased = append(st.erased, f.name)
		return nil
	}
	// The plaintext goes after the data in the same buffer.
	b, err = OpenSealed(b, aead, subject, data)
	if err != nil {
		return err
	}
	*st.buf = b
	return decodeStrict(f.codec.dec, b[len(data):], fv)
}

// appendExtHeader appends the header of an extension value of type id and
// n bytes, written with the type byte c.
func appendExtHeader(dst []byte, c byte, id int8, n int) []byte {
	dst = append(dst, c)
	switch c {
	case msgpcode.Ext8:
		dst = append(dst, byte(n))
	case msgpcode.Ext16:
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	case msgpcode.Ext32:
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, byte(id))
}

// sealedData returns the data of raw, one msgpack value, when it is an
// ExtPersonal extension.
func sealedData(raw []byte) ([]byte, bool) {
	if len(raw) < 3 {
		return nil, false
	}
	var head int
	switch raw[0] {
	case msgpcode.Ext8:
		head = 3
	case msgpcode.Ext16:
		head = 4
	case msgpcode.Ext32:
		head = 6
	default:
		return nil, false
	}
	if len(raw) < head || int8(raw[head-1]) != ExtPersonal {
		return nil, false
	}
	return raw[head:], true
}

// SealedData returns the data of an ExtPersonal value (its msgpack bytes),
// or false when value is not one.
func SealedData(value []byte) ([]byte, bool) { return sealedData(value) }

// AppendSealedValue appends data as one ExtPersonal msgpack value.
func AppendSealedValue(dst, data []byte) []byte {
	n := len(data)
	switch {
	case n <= 0xff:
		dst = append(dst, msgpcode.Ext8, byte(n))
	case n <= 0xffff:
		dst = append(dst, msgpcode.Ext16)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, msgpcode.Ext32)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	dst = append(dst, byte(ExtPersonal))
	return append(dst, data...)
}

// Personal reports whether the codec's type has fields with an es tag
// (personal, subject or erased).
func (c *Codec) Personal() bool { return c.p != nil }

// EncodeWith encodes v, encrypting its personal fields for the subject its
// es:"subject" field names (subject when it names none) with keys.
func (c *Codec) EncodeWith(v reflect.Value, keys Keys, subject string) ([]byte, error) {
	if c.p == nil {
		return c.Encode(v)
	}
	pe := acquireEncoder()
	defer releaseEncoder(pe)
	if err := c.p.encode(pe.enc, v, keys, subject); err != nil {
		return nil, err
	}
	return bytes.Clone(pe.buf.Bytes()), nil
}

// DecodeWith decodes data into v, decrypting its personal fields with keys
// (an erased one is left zero, and recorded in the es:"erased" field).
func (c *Codec) DecodeWith(data []byte, v reflect.Value, keys Keys) error {
	if c.p == nil {
		return c.Decode(data, v)
	}
	pd := decoderPool.Get().(*pooledDecoder)
	defer decoderPool.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(pd.r)
	return c.p.decode(pd.dec, v, keys)
}
