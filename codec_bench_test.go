package es_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
)

type benchItemAdded struct {
	OrderID   uuid.UUID
	ProductID string
	Qty       int
	PriceCent int64
	At        time.Time
}

type benchItemAddedPlain struct {
	OrderID   string
	ProductID string
	Qty       int
	PriceCent int64
	At        time.Time
}

func benchRegistry(b *testing.B) (*es.Registry, benchItemAdded) {
	b.Helper()
	r := es.NewRegistry()
	if err := es.Register[benchItemAdded](r, "ItemAdded"); err != nil {
		b.Fatal(err)
	}
	return r, benchItemAdded{OrderID: uuid.New(), ProductID: "sku-123", Qty: 2, PriceCent: 1999, At: time.Now()}
}

// BenchmarkEncode encodes a small event through the registry; the
// baseline/msgpack sub-benchmark is plain msgpack.Marshal of the same shape
// (with the UUID as a string, as the registry writes it).
func BenchmarkEncode(b *testing.B) {
	r, ev := benchRegistry(b)
	b.Run("registry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := r.Encode(&ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline/msgpack", func(b *testing.B) {
		plain := benchItemAddedPlain{OrderID: ev.OrderID.String(), ProductID: ev.ProductID, Qty: ev.Qty, PriceCent: ev.PriceCent, At: ev.At}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(&plain); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecode decodes a small event through the registry, against plain
// msgpack.Unmarshal into the same shape.
func BenchmarkDecode(b *testing.B) {
	r, ev := benchRegistry(b)
	name, data, err := r.Encode(ev)
	if err != nil {
		b.Fatal(err)
	}
	e := es.Event{Type: name, Data: data, StreamID: "order-1", Version: 1}
	b.Run("registry", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Decode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline/msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v benchItemAddedPlain
			if err := msgpack.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("upcast", func(b *testing.B) {
		r2 := es.NewRegistry()
		if err := es.Register[benchItemAdded](r2, "ItemAdded.v2"); err != nil {
			b.Fatal(err)
		}
		if err := r2.RegisterUpcaster("ItemAdded", func(m map[string]any) (string, map[string]any, error) {
			return "ItemAdded.v2", m, nil
		}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r2.Decode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Two schema versions under one name: v1 -> v2 -> v3.
	b.Run("upcast/versions", func(b *testing.B) {
		r3 := es.NewRegistry()
		if err := es.RegisterWith[benchItemAdded](r3, "ItemAdded", &es.RegisterOpts{SchemaVersion: 3}); err != nil {
			b.Fatal(err)
		}
		for from := 1; from <= 2; from++ {
			if err := r3.RegisterUpcasterWith("ItemAdded", func(m map[string]any) (string, map[string]any, error) {
				return "ItemAdded", m, nil
			}, &es.UpcasterOpts{FromVersion: from}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r3.Decode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
