package streamhash_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/internal/streamhash"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestHashMatchesPostgres compares Hash and Partition with hashtext on a real
// PostgreSQL (pgtest's server: skipped without one unless
// ES_REQUIRE_POSTGRES=1) for random valid UTF-8 strings of 0 to 200 bytes,
// mixing 1- to 4-byte characters. The seed is logged.
func TestHashMatchesPostgres(t *testing.T) {
	t.Parallel()
	connString := pgtest.ConnString(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// hashtext hashes the bytes in the database encoding; Hash hashes the
	// Go string's, which are UTF-8.
	var encoding string
	if err := conn.QueryRow(ctx, "SHOW server_encoding").Scan(&encoding); err != nil {
		t.Fatal(err)
	}
	if encoding != "UTF8" {
		t.Fatalf("server_encoding is %s: the comparison needs a UTF8 database", encoding)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	const count = 2000
	inputs := make([]string, count)
	partitions := make([]int64, count)
	for i := range inputs {
		inputs[i] = randomUTF8(rng, rng.IntN(201))
		partitions[i] = 1 + rng.Int64N(64)
		if i%10 == 0 { // and some far larger
			partitions[i] = 1 + rng.Int64N(1<<31-1)
		}
	}

	rows, err := conn.Query(ctx, `
		SELECT hashtext(s), (hashtext(s) & 2147483647) % n
		FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS u(s, n, i)
		ORDER BY i`, inputs, partitions)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var sqlHash int32
		var sqlPartition int32
		if err := rows.Scan(&sqlHash, &sqlPartition); err != nil {
			t.Fatal(err)
		}
		s, n := inputs[i], partitions[i]
		if got := streamhash.Hash(s); got != uint32(sqlHash) {
			t.Errorf("Hash(%q) (%d bytes) = %d, hashtext gives %d (int4 %d)",
				s, len(s), got, uint32(sqlHash), sqlHash)
		}
		if got := streamhash.Partition(s, int(n)); got != int(sqlPartition) {
			t.Errorf("Partition(%q, %d) = %d, SQL gives %d", s, n, got, sqlPartition)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != count {
		t.Fatalf("got %d rows, want %d", i, count)
	}
}

// randomUTF8 returns a valid UTF-8 string of exactly n bytes without NUL
// (which text cannot hold): random characters of 1 to 4 bytes while they
// fit, then ASCII.
func randomUTF8(rng *rand.Rand, n int) string {
	b := make([]byte, 0, n)
	for len(b) < n {
		var r rune
		switch rng.IntN(4) {
		case 0:
			r = rune(1 + rng.IntN(0x7f))
		case 1:
			r = rune(0x80 + rng.IntN(0x800-0x80))
		case 2:
			r = rune(0x800 + rng.IntN(0x10000-0x800))
			if utf8.RuneLen(r) < 0 { // a surrogate
				r = 0xfffd
			}
		default:
			r = rune(0x10000 + rng.IntN(0x110000-0x10000))
		}
		if len(b)+utf8.RuneLen(r) > n {
			r = rune(1 + rng.IntN(0x7f))
		}
		b = utf8.AppendRune(b, r)
	}
	if !utf8.Valid(b) || len(b) != n {
		panic("randomUTF8: bad string")
	}
	return string(b)
}
