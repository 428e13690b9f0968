package memstore_test

import (
	"fmt"
	"testing"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/storetest"
)

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			ctx := b.Context()
			s := memstore.New(nil)
			events := storetest.Events(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Append(ctx, "bench-1", es.Any, events); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkReadStream(b *testing.B) {
	const n = 1000
	ctx := b.Context()
	s := memstore.New(nil)
	for range n / 100 {
		if _, err := s.Append(ctx, "bench-1", es.Any, storetest.Events(100)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		count := 0
		for _, err := range s.ReadStream(ctx, "bench-1", nil) {
			if err != nil {
				b.Fatal(err)
			}
			count++
		}
		if count != n {
			b.Fatalf("read %d events, want %d", count, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
