// Package streamhash computes in Go the hash PostgreSQL computes for a text
// value with hashtext, so that Go code can place a stream in the same
// partition as SQL does.
//
// Consumer groups assign a stream to partition hashtext(stream_id) mod N in
// SQL; memstore, which has no database, must assign it identically in Go, or
// a consumer would see different streams depending on the store. [Hash]
// returns what hashtext returns and [Partition] applies the modulus.
//
// Relying on hashtext is safe across PostgreSQL major versions: hash indexes
// and hash-partitioned tables store its values on disk, and pg_upgrade keeps
// them as they are, so PostgreSQL cannot change the function without breaking
// every upgraded database.
//
// What is computed: for a text value in a database whose collation is
// deterministic (the default; the database encoding is UTF-8), hashtext is
// hash_bytes (src/common/hashfn.c): Bob Jenkins' lookup3 hash over the
// value's bytes, with PostgreSQL's initial value. hash_bytes reads the bytes
// in 4-byte words in the machine's byte order. This package always reads
// them little-endian, whatever the Go platform, so it matches PostgreSQL
// servers on little-endian hardware: x86-64 and arm64, which is every
// server the supported clouds and distributions run. A server on big-endian
// hardware (s390x, for instance) hashes differently.
package streamhash

import (
	"encoding/binary"
	"math/bits"
)

// Hash returns PostgreSQL's hashtext(s) for the bytes of s, as a uint32:
// hashtext's int4 result with its bits read as unsigned. s is hashed as
// given; it should be valid UTF-8, as every text value of a UTF-8 database
// is.
func Hash(s string) uint32 {
	return hashBytes([]byte(s))
}

// Partition returns the partition, in [0, partitions), of the stream
// streamID among partitions partitions: Hash(streamID) without its top
// (sign) bit, modulo partitions. The SQL function stream_partition computes
// the same: (hashtext(stream_id) & 2147483647) % partitions, in int4
// arithmetic, which is cheaper per row than an unsigned 32-bit modulo.
//
// It panics if partitions is less than 1.
func Partition(streamID string, partitions int) int {
	if partitions < 1 {
		panic("streamhash: partitions must be at least 1")
	}
	return int(Hash(streamID)&0x7fffffff) % partitions
}

// hashBytes is PostgreSQL's hash_bytes reading the key little-endian:
// lookup3's hashlittle with PostgreSQL's initial value, a block loop that
// also takes a last full block, and a final mix that always runs.
func hashBytes(k []byte) uint32 {
	// PostgreSQL starts all three words at the golden ratio plus the
	// length plus its own constant. The length wraps as the C code's
	// uint32 does (a text value is below 1 GB anyway).
	init := 0x9e3779b9 + uint32(len(k)) + 3923095
	a, b, c := init, init, init

	// Every full 12-byte block, a last one included when the length is a
	// multiple of 12 (Bob Jenkins' original keeps that one for the tail).
	for len(k) >= 12 {
		a += binary.LittleEndian.Uint32(k[0:])
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a, b, c = mix(a, b, c)
		k = k[12:]
	}

	// The 0 to 11 remaining bytes, as little-endian words zero-padded
	// on the right; c's lowest byte is never filled (lookup3 reserves it
	// for the length), so the third word's bytes go one place higher.
	switch len(k) {
	case 11:
		c += uint32(k[10]) << 24
		fallthrough
	case 10:
		c += uint32(k[9]) << 16
		fallthrough
	case 9:
		c += uint32(k[8]) << 8
		fallthrough
	case 8:
		b += binary.LittleEndian.Uint32(k[4:])
		a += binary.LittleEndian.Uint32(k[0:])
	case 7:
		b += uint32(k[6]) << 16
		fallthrough
	case 6:
		b += uint32(k[5]) << 8
		fallthrough
	case 5:
		b += uint32(k[4])
		fallthrough
	case 4:
		a += binary.LittleEndian.Uint32(k[0:])
	case 3:
		a += uint32(k[2]) << 16
		fallthrough
	case 2:
		a += uint32(k[1]) << 8
		fallthrough
	case 1:
		a += uint32(k[0])
	}

	// PostgreSQL runs the final mix even when nothing is left (an empty
	// key or a multiple of 12), unlike Bob Jenkins' original, which
	// returns early for an empty tail.
	return final(a, b, c)
}

// mix is lookup3's reversible mixing of three words, applied after each
// 12-byte block.
func mix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= rotl(c, 4)
	c += b
	b -= a
	b ^= rotl(a, 6)
	a += c
	c -= b
	c ^= rotl(b, 8)
	b += a
	a -= c
	a ^= rotl(c, 16)
	c += b
	b -= a
	b ^= rotl(a, 19)
	a += c
	c -= b
	c ^= rotl(b, 4)
	b += a
	return a, b, c
}

// final is lookup3's final mixing of three words into c, which it returns.
func final(a, b, c uint32) uint32 {
	c ^= b
	c -= rotl(b, 14)
	a ^= c
	a -= rotl(c, 11)
	b ^= a
	b -= rotl(a, 25)
	c ^= b
	c -= rotl(b, 16)
	a ^= c
	a -= rotl(c, 4)
	b ^= a
	b -= rotl(a, 14)
	c ^= b
	c -= rotl(b, 24)
	return c
}

func rotl(x uint32, k int) uint32 {
	return bits.RotateLeft32(x, k)
}
