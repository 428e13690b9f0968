// Package codec is the msgpack codec of event payloads and snapshot
// states: the per-type codec the es Registry compiles once for every
// registered event type, the generic map form upcasters work on, and the
// snapshot state encoding package snapshot uses.
//
// It walks structs itself (following msgpack/v5's field naming rules) so
// that it can encode uuid.UUID as its canonical string and decode time.Time
// in UTC without touching msgpack's process-global type table
// (msgpack.Register / RegisterExt). Every other leaf value is handed to
// msgpack/v5's own encoder and decoder.
package codec

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

type (
	encodeFunc func(e *msgpack.Encoder, v reflect.Value) error
	decodeFunc func(d *msgpack.Decoder, v reflect.Value) error
)

// ErrUnsupported is wrapped by the errors of [Build] and [For] for a type
// (or a field of it) the codec cannot handle.
var ErrUnsupported = errors.New("not supported by the event codec")

// typeCodec encodes and decodes values of one Go type.
type typeCodec struct {
	enc encodeFunc
	dec decodeFunc
}

// Codec encodes and decodes values of one Go type.
type Codec struct {
	c *typeCodec
	// p is the codec of a top-level struct with es-tagged fields (see
	// personal.go); nil for other types.
	p *personalCodec
}

// Build compiles the codec of t, an event type, or returns an error for a
// type the codec cannot handle (a func or chan field, an unsupported map
// key...). The es tags of t's own fields (personal, subject, erased) are
// honoured; an es tag on a field of a nested struct is an error.
func Build(t reflect.Type) (*Codec, error) {
	b := newCodecBuilder()
	b.esTags, b.top = true, t
	c, err := b.build(t)
	if err != nil {
		return nil, err
	}
	p, err := newPersonalCodec(t, b.topFields)
	if err != nil {
		return nil, err
	}
	// Values msgpack encodes itself (structs without a UUID or a time
	// inside) are not walked by the builder: look for es tags there too.
	containsItself, err := checkNestedTags(t)
	if err != nil {
		return nil, err
	}
	if p != nil && containsItself {
		return nil, fmt.Errorf("%w: %s has es-tagged fields and contains itself", ErrUnsupported, t)
	}
	return &Codec{c: c, p: p}, nil
}

// For returns the codec of t, compiled on first use and cached. es tags are
// ignored: every field is written as it is (snapshot states, which the
// repository encrypts whole).
func For(t reflect.Type) (*Codec, error) {
	c, err := cachedCodec(t)
	if err != nil {
		return nil, err
	}
	return &Codec{c: c}, nil
}

// Encode encodes v, a value of the codec's type. A personal field (see
// [Codec.EncodeWith]) is an error wrapping ErrNoKeys.
func (c *Codec) Encode(v reflect.Value) ([]byte, error) {
	if c.p != nil {
		return c.EncodeWith(v, nil, "")
	}
	return encodeWith(c.c.enc, v)
}

// Decode decodes data into v, a settable value of the codec's type. An
// encrypted personal field (see [Codec.DecodeWith]) is an error wrapping
// ErrNoKeys.
func (c *Codec) Decode(data []byte, v reflect.Value) error {
	if c.p != nil {
		return c.DecodeWith(data, v, nil)
	}
	return decodeWith(c.c.dec, data, v)
}

// DecodeStrict decodes data into v and fails unless data is exactly one
// encoded value (nothing left over).
func (c *Codec) DecodeStrict(data []byte, v reflect.Value) error {
	return decodeStrict(c.c.dec, data, v)
}

var (
	uuidType   = reflect.TypeFor[uuid.UUID]()
	timeType   = reflect.TypeFor[time.Time]()
	sealedType = reflect.TypeFor[Sealed]()

	customEncoderType     = reflect.TypeFor[msgpack.CustomEncoder]()
	customDecoderType     = reflect.TypeFor[msgpack.CustomDecoder]()
	marshalerType         = reflect.TypeFor[msgpack.Marshaler]()
	unmarshalerType       = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryMarshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textMarshalerType     = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType   = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// hasOwnCodec reports whether values of t (or *t) choose their own msgpack
// encoding, in which case the codec leaves them to msgpack.
func hasOwnCodec(t reflect.Type) bool {
	for _, it := range []reflect.Type{
		customEncoderType, customDecoderType, marshalerType, unmarshalerType,
		binaryMarshalerType, binaryUnmarshalerType, textMarshalerType, textUnmarshalerType,
	} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return true
		}
	}
	return false
}

// codecBuilder compiles codecs, memoising per type so that recursive types
// terminate.
type codecBuilder struct {
	special map[reflect.Type]bool
	codecs  map[reflect.Type]*typeCodec

	// esTags: honour the es tags of top's fields (Build), whose fields are
	// then kept in topFields.
	esTags    bool
	top       reflect.Type
	topFields []structField
}

func newCodecBuilder() *codecBuilder {
	return &codecBuilder{special: map[reflect.Type]bool{}, codecs: map[reflect.Type]*typeCodec{}}
}

// needsWalk reports whether t contains, anywhere inside, a uuid.UUID or a
// time.Time that the codec must handle itself.
func (b *codecBuilder) needsWalk(t reflect.Type) bool {
	if v, ok := b.special[t]; ok {
		return v
	}
	b.special[t] = false // provisional: breaks cycles
	var r bool
	switch {
	case t == uuidType, t == timeType:
		r = true
	case t.Kind() == reflect.Pointer:
		r = b.needsWalk(t.Elem())
	case hasOwnCodec(t):
		r = false
	default:
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			r = b.needsWalk(t.Elem())
		case reflect.Map:
			r = b.needsWalk(t.Key()) || b.needsWalk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if f.IsExported() || f.Anonymous {
					if b.needsWalk(f.Type) {
						r = true
						break
					}
				}
			}
		}
	}
	b.special[t] = r
	return r
}

// build returns the codec of t. Structs are always walked (the top-level
// event type included); other types are walked only when they contain a
// UUID or a time.
func (b *codecBuilder) build(t reflect.Type) (*typeCodec, error) {
	if c, ok := b.codecs[t]; ok {
		return c, nil
	}
	c := &typeCodec{}
	b.codecs[t] = c // placeholder filled below; recursive types share it
	var err error
	switch {
	case t == uuidType:
		c.enc, c.dec = encodeUUID, decodeUUID
	case t == timeType:
		c.enc, c.dec = encodeTime, decodeTime
	case t.Kind() == reflect.Pointer && b.needsWalk(t.Elem()):
		err = b.buildPointer(c, t)
	case hasOwnCodec(t) || (t.Kind() != reflect.Struct && !b.needsWalk(t)):
		c.enc, c.dec = encodeDefault, decodeDefault
	default:
		switch t.Kind() {
		case reflect.Pointer:
			err = b.buildPointer(c, t)
		case reflect.Slice:
			err = b.buildSlice(c, t)
		case reflect.Array:
			err = b.buildArray(c, t)
		case reflect.Map:
			err = b.buildMap(c, t)
		case reflect.Struct:
			err = b.buildStruct(c, t)
		default:
			c.enc, c.dec = encodeDefault, decodeDefault
		}
	}
	if err != nil {
		delete(b.codecs, t)
		return nil, err
	}
	return c, nil
}

func encodeDefault(e *msgpack.Encoder, v reflect.Value) error { return e.EncodeValue(v) }
func decodeDefault(d *msgpack.Decoder, v reflect.Value) error { return d.DecodeValue(v) }

const hexDigits = "0123456789abcdef"

// encodeUUID writes a UUID as its canonical 36-character string (str8).
func encodeUUID(e *msgpack.Encoder, v reflect.Value) error {
	var u uuid.UUID
	reflect.Copy(reflect.ValueOf(u[:]), v)
	var buf [38]byte
	buf[0], buf[1] = msgpcode.Str8, 36
	j := 2
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hexDigits[x>>4], hexDigits[x&0x0f]
		j += 2
	}
	_, err := e.Writer().Write(buf[:])
	return err
}

// decodeUUID reads a UUID written as a string (any form uuid.Parse accepts),
// as 16 raw bytes (msgpack's default encoding), or nil (the zero UUID).
func decodeUUID(d *msgpack.Decoder, v reflect.Value) error {
	var buf [64]byte
	b, err := readStringTemp(d, buf[:])
	if err != nil {
		return fmt.Errorf("decoding uuid: %w", err)
	}
	var u uuid.UUID
	switch len(b) {
	case 0: // nil or empty: the zero UUID
	case 16:
		copy(u[:], b)
	default:
		if u, err = uuid.ParseBytes(b); err != nil {
			return fmt.Errorf("decoding uuid: %w", err)
		}
	}
	reflect.Copy(v, reflect.ValueOf(u[:]))
	return nil
}

// readStringTemp reads a msgpack str or bin (or nil, returned as nil) into
// buf when it fits, without allocating. The result is valid until buf is
// reused.
func readStringTemp(d *msgpack.Decoder, buf []byte) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	if n > len(buf) {
		buf = make([]byte, n)
	}
	b := buf[:n]
	if err := d.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

// encodeTime writes a time with the msgpack timestamp extension (-1),
// nanoseconds included. The zero time.Time is written as nil (msgpack's
// default).
func encodeTime(e *msgpack.Encoder, v reflect.Value) error {
	return e.EncodeTime(v.Interface().(time.Time))
}

// decodeTime reads a timestamp and returns it in UTC (nil → zero time). It
// also reads an RFC 3339 string, the form msgpack_to_jsonb shows a time in
// and jsonb_to_msgpack (an event written from SQL in JSON) gives back.
func decodeTime(d *msgpack.Decoder, v reflect.Value) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		v.Set(reflect.Zero(timeType))
		return d.DecodeNil()
	}
	if msgpcode.IsString(c) {
		s, err := d.DecodeString()
		if err != nil {
			return err
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("time: %w", err)
		}
		v.Set(reflect.ValueOf(tm.UTC()))
		return nil
	}
	tm, err := d.DecodeTime()
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(tm.UTC()))
	return nil
}

func peekNil(d *msgpack.Decoder) (bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return false, err
	}
	if c == msgpcode.Nil {
		return true, d.DecodeNil()
	}
	return false, nil
}

func (b *codecBuilder) buildPointer(c *typeCodec, t reflect.Type) error {
	elem, err := b.build(t.Elem())
	if err != nil {
		return err
	}
	c.enc = func(e *msgpack.Encoder, v reflect.Value) error {
		if v.IsNil() {
			return e.EncodeNil()
		}
		return elem.enc(e, v.Elem())
	}
	c.dec = func(d *msgpack.Decoder, v reflect.Value) error {
		isNil, err := peekNil(d)
		if err != nil || isNil {
			if isNil {
				v.SetZero()
			}
			return err
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return elem.dec(d, v.Elem())
	}
	return nil
}

func (b *codecBuilder) buildSlice(c *typeCodec, t reflect.Type) error {
	elem, err := b.build(t.Elem())
	if err != nil {
		return err
	}
	c.enc = func(e *msgpack.Encoder, v reflect.Value) error {
		if v.IsNil() {
			return e.EncodeNil()
		}
		return encodeList(e, v, elem)
	}
	c.dec = func(d *msgpack.Decoder, v reflect.Value) error {
		n, err := d.DecodeArrayLen()
		if err != nil {
			return err
		}
		if n < 0 {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			if err := elem.dec(d, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	return nil
}

// encodeList writes the elements of v (a slice or an array) as a msgpack
// array.
func encodeList(e *msgpack.Encoder, v reflect.Value, elem *typeCodec) error {
	if err := e.EncodeArrayLen(v.Len()); err != nil {
		return err
	}
	for i := range v.Len() {
		if err := elem.enc(e, v.Index(i)); err != nil {
			return err
		}
	}
	return nil
}

func (b *codecBuilder) buildArray(c *typeCodec, t reflect.Type) error {
	elem, err := b.build(t.Elem())
	if err != nil {
		return err
	}
	c.enc = func(e *msgpack.Encoder, v reflect.Value) error { return encodeList(e, v, elem) }
	c.dec = func(d *msgpack.Decoder, v reflect.Value) error {
		n, err := d.DecodeArrayLen()
		if err != nil {
			return err
		}
		v.SetZero()
		for i := range max(n, 0) {
			if i >= v.Len() {
				if err := d.Skip(); err != nil {
					return err
				}
				continue
			}
			if err := elem.dec(d, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func (b *codecBuilder) buildMap(c *typeCodec, t reflect.Type) error {
	key, err := b.build(t.Key())
	if err != nil {
		return err
	}
	val, err := b.build(t.Elem())
	if err != nil {
		return err
	}
	c.enc = func(e *msgpack.Encoder, v reflect.Value) error {
		if v.IsNil() {
			return e.EncodeNil()
		}
		if err := e.EncodeMapLen(v.Len()); err != nil {
			return err
		}
		it := v.MapRange()
		for it.Next() {
			if err := key.enc(e, it.Key()); err != nil {
				return err
			}
			if err := val.enc(e, it.Value()); err != nil {
				return err
			}
		}
		return nil
	}
	c.dec = func(d *msgpack.Decoder, v reflect.Value) error {
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		if n < 0 {
			v.SetZero()
			return nil
		}
		m := reflect.MakeMapWithSize(t, n)
		for range n {
			k := reflect.New(t.Key()).Elem()
			if err := key.dec(d, k); err != nil {
				return err
			}
			x := reflect.New(t.Elem()).Elem()
			if err := val.dec(d, x); err != nil {
				return err
			}
			m.SetMapIndex(k, x)
		}
		v.Set(m)
		return nil
	}
	return nil
}

// structField is one encoded field of a struct.
type structField struct {
	name      string
	index     []int
	omitEmpty bool
	codec     *typeCodec
	role      fieldRole // from its es tag (Build only)
}

// structFields lists the fields of t the way msgpack/v5 names them: the
// Go field name unless a `msgpack:"name"` tag says otherwise, `msgpack:"-"`
// skipped, unexported fields skipped, anonymous (embedded) struct fields
// without a name tag inlined. Outer fields shadow inlined ones.
func (b *codecBuilder) structFields(t reflect.Type, index []int, seen map[string]bool) ([]structField, error) {
	var direct []structField
	type embedded struct {
		t     reflect.Type
		index []int
	}
	var inline []embedded
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("msgpack")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if f.Anonymous && name == "" && !strings.Contains(opts, "noinline") {
			ft := f.Type
			if ft.Kind() == reflect.Struct && !hasOwnCodec(ft) {
				inline = append(inline, embedded{ft, idx})
				continue
			}
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				return nil, fmt.Errorf("%w: embedded pointer field %s.%s; embed the struct by value or name the field", ErrUnsupported, t, f.Name)
			}
		}
		if !f.IsExported() {
			continue
		}
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "", "noinline":
			case "omitempty":
				omit = true
			default:
				return nil, fmt.Errorf("%w: msgpack tag option %q on %s.%s", ErrUnsupported, o, t, f.Name)
			}
		}
		if name == "" {
			name = f.Name
		}
		if seen[name] {
			continue
		}
		role := rolePlain
		if b.esTags {
			var err error
			if role, err = parseRole(t, f); err != nil {
				return nil, err
			}
		}
		c, err := b.build(f.Type)
		if err != nil {
			return nil, err
		}
		direct = append(direct, structField{name: name, index: idx, omitEmpty: omit, codec: c, role: role})
	}
	for _, f := range direct {
		seen[f.name] = true
	}
	for _, em := range inline {
		fs, err := b.structFields(em.t, em.index, seen)
		if err != nil {
			return nil, err
		}
		direct = append(direct, fs...)
	}
	return direct, nil
}

func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	default:
		return v.IsZero()
	}
}

func (b *codecBuilder) buildStruct(c *typeCodec, t reflect.Type) error {
	all, err := b.structFields(t, nil, map[string]bool{})
	if err != nil {
		return err
	}
	// Personal fields are the event's own: whose they are is the event's
	// subject. An es:"erased" field is never written.
	fields := all[:0:0]
	for _, f := range all {
		if f.role != rolePlain && t != b.top {
			return fmt.Errorf("%w: es tag on field %s of %s, which is not the event type %s: tag the field of %s that holds it",
				ErrUnsupported, f.name, t, b.top, b.top)
		}
		if f.role != roleErased {
			fields = append(fields, f)
		}
	}
	if t == b.top {
		b.topFields = all
	}
	byName := make(map[string]*structField, len(fields))
	for i := range fields {
		byName[fields[i].name] = &fields[i]
	}
	c.enc = func(e *msgpack.Encoder, v reflect.Value) error {
		n := 0
		for i := range fields {
			if !fields[i].omitEmpty || !isEmptyValue(v.FieldByIndex(fields[i].index)) {
				n++
			}
		}
		if err := e.EncodeMapLen(n); err != nil {
			return err
		}
		for i := range fields {
			f := &fields[i]
			fv := v.FieldByIndex(f.index)
			if f.omitEmpty && isEmptyValue(fv) {
				continue
			}
			if err := e.EncodeString(f.name); err != nil {
				return err
			}
			if err := f.codec.enc(e, fv); err != nil {
				return fmt.Errorf("field %s: %w", f.name, err)
			}
		}
		return nil
	}
	c.dec = func(d *msgpack.Decoder, v reflect.Value) error {
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		if n < 0 {
			v.SetZero()
			return nil
		}
		var buf [64]byte
		for range n {
			k, err := readStringTemp(d, buf[:])
			if err != nil {
				return err
			}
			f, ok := byName[string(k)]
			if !ok {
				if err := d.Skip(); err != nil {
					return err
				}
				continue
			}
			if err := f.codec.dec(d, v.FieldByIndex(f.index)); err != nil {
				return fmt.Errorf("field %s: %w", k, err)
			}
		}
		return nil
	}
	return nil
}

// encoderPool recycles msgpack encoders and their buffers.
var encoderPool = sync.Pool{New: func() any {
	buf := new(bytes.Buffer)
	e := msgpack.NewEncoder(buf)
	e.UseCompactInts(true)
	return &pooledEncoder{buf: buf, enc: e}
}}

type pooledEncoder struct {
	buf *bytes.Buffer
	enc *msgpack.Encoder
	// scratch is a buffer the personal fields reuse (personal.go).
	scratch []byte
}

// acquireEncoder takes an encoder with an empty buffer from the pool.
func acquireEncoder() *pooledEncoder {
	pe := encoderPool.Get().(*pooledEncoder)
	pe.buf.Reset()
	return pe
}

// releaseEncoder returns pe to the pool, unless its buffer grew large.
func releaseEncoder(pe *pooledEncoder) {
	if pe.buf.Cap() <= 64<<10 {
		pe.buf.Reset()
		encoderPool.Put(pe)
	}
}

// encodeWith encodes v with fn and returns a copy of the bytes.
func encodeWith(fn encodeFunc, v reflect.Value) ([]byte, error) {
	pe := acquireEncoder()
	defer releaseEncoder(pe)
	if err := fn(pe.enc, v); err != nil {
		return nil, err
	}
	return bytes.Clone(pe.buf.Bytes()), nil
}

// decoderPool recycles msgpack decoders and their readers.
var decoderPool = sync.Pool{New: func() any {
	r := bytes.NewReader(nil)
	return &pooledDecoder{r: r, dec: msgpack.NewDecoder(r)}
}}

type pooledDecoder struct {
	r   *bytes.Reader
	dec *msgpack.Decoder
}

// decodeWith decodes data into v with fn.
func decodeWith(fn decodeFunc, data []byte, v reflect.Value) error {
	pd := decoderPool.Get().(*pooledDecoder)
	defer decoderPool.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(pd.r)
	return fn(pd.dec, v)
}

// DecodeMap decodes an event body into a generic map, for upcasters. An
// encrypted personal field is kept as it is, as a [Sealed] value.
func DecodeMap(data []byte) (map[string]any, error) {
	if len(data) == 0 {
		return map[string]any{}, nil
	}
	pd := decoderPool.Get().(*pooledDecoder)
	defer decoderPool.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(pd.r)
	d := pd.dec
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return map[string]any{}, err
	}
	m := make(map[string]any, n)
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return nil, err
		}
		c, err := d.PeekCode()
		if err != nil {
			return nil, err
		}
		var v any
		if msgpcode.IsExt(c) {
			raw, err := d.DecodeRaw()
			if err != nil {
				return nil, err
			}
			if _, ok := sealedData(raw); ok {
				v = Sealed(raw)
			} else if v, err = decodeInterface(raw); err != nil {
				return nil, err
			}
		} else if v, err = d.DecodeInterface(); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// decodeInterface decodes one msgpack value as msgpack does into an any.
func decodeInterface(data []byte) (any, error) {
	pd := decoderPool.Get().(*pooledDecoder)
	defer decoderPool.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(pd.r)
	return pd.dec.DecodeInterface()
}

// EncodeMap encodes an upcast map; uuid.UUID and time.Time values put in it
// by upcasters are encoded as in structs.
func EncodeMap(m map[string]any) ([]byte, error) {
	return encodeWith(encodeAnyMap, reflect.ValueOf(m))
}

// encodeAnyMap encodes map[string]any, routing interface values that are
// UUIDs or times through the codec's own encoders.
func encodeAnyMap(e *msgpack.Encoder, v reflect.Value) error {
	if err := e.EncodeMapLen(v.Len()); err != nil {
		return err
	}
	it := v.MapRange()
	for it.Next() {
		if err := e.EncodeString(it.Key().String()); err != nil {
			return err
		}
		if err := encodeAnyValue(e, it.Value()); err != nil {
			return err
		}
	}
	return nil
}

func encodeAnyValue(e *msgpack.Encoder, v reflect.Value) error {
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch x := v; {
	case !x.IsValid() || (x.Kind() == reflect.Interface && x.IsNil()):
		return e.EncodeNil()
	case x.Type() == sealedType:
		_, err := e.Writer().Write(x.Bytes())
		return err
	case x.Type() == uuidType:
		return encodeUUID(e, x)
	case x.Type() == timeType:
		return encodeTime(e, x)
	case x.Kind() == reflect.Map && x.Type().Key().Kind() == reflect.String && x.Type().Elem().Kind() == reflect.Interface:
		if x.IsNil() {
			return e.EncodeNil()
		}
		return encodeAnyMap(e, x)
	case x.Kind() == reflect.Slice && x.Type().Elem().Kind() == reflect.Interface:
		if x.IsNil() {
			return e.EncodeNil()
		}
		if err := e.EncodeArrayLen(x.Len()); err != nil {
			return err
		}
		for i := range x.Len() {
			if err := encodeAnyValue(e, x.Index(i)); err != nil {
				return err
			}
		}
		return nil
	default:
		c, err := cachedCodec(x.Type())
		if err != nil {
			return err
		}
		return c.enc(e, x)
	}
}

// codecCache holds codecs for types met inside upcast maps (values an
// upcaster put there), built on first use.
var codecCache sync.Map // reflect.Type → *typeCodec

func cachedCodec(t reflect.Type) (*typeCodec, error) {
	if c, ok := codecCache.Load(t); ok {
		return c.(*typeCodec), nil
	}
	c, err := newCodecBuilder().build(t)
	if err != nil {
		return nil, err
	}
	codecCache.Store(t, c)
	return c, nil
}

// decodeStrict decodes data into v with fn and fails unless fn consumed all
// of data.
func decodeStrict(fn decodeFunc, data []byte, v reflect.Value) error {
	pd := decoderPool.Get().(*pooledDecoder)
	defer decoderPool.Put(pd)
	pd.r.Reset(data)
	pd.dec.Reset(pd.r)
	if err := fn(pd.dec, v); err != nil {
		return err
	}
	if n := pd.r.Len(); n > 0 {
		return fmt.Errorf("%d bytes left over after the encoded value", n)
	}
	return nil
}
