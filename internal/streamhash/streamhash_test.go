package streamhash_test

import (
	"testing"

	"github.com/pgevent/es/internal/streamhash"
)

// TestHashKnownValues checks Hash against values computed by PostgreSQL 15.18
// (x86-64, UTF8 database, locale C.UTF-8) with SELECT hashtext(s): each int4
// result is written here as the uint32 with the same bits, with the int4 in
// the comment. The strings of 1 to 40 bytes cover every tail length (0 to 11
// bytes after the 12-byte blocks) with zero to three blocks before it.
func TestHashKnownValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 2817148525},                                           // 0 bytes, int4 -1477818771
		{"a", 1075015857},                                          // 1 bytes, int4 1075015857
		{"ab", 1718550461},                                         // 2 bytes, int4 1718550461
		{"abc", 3509578647},                                        // 3 bytes, int4 -785388649
		{"abcd", 3901032492},                                       // 4 bytes, int4 -393934804
		{"abcde", 3849307716},                                      // 5 bytes, int4 -445659580
		{"abcdef", 2547507136},                                     // 6 bytes, int4 -1747460160
		{"abcdefg", 501636814},                                     // 7 bytes, int4 501636814
		{"abcdefgh", 2334039091},                                   // 8 bytes, int4 -1960928205
		{"abcdefghi", 4202835807},                                  // 9 bytes, int4 -92131489
		{"abcdefghij", 1948051852},                                 // 10 bytes, int4 1948051852
		{"abcdefghijk", 2811163603},                                // 11 bytes, int4 -1483803693
		{"abcdefghijkl", 2708880084},                               // 12 bytes, int4 -1586087212
		{"abcdefghijklm", 405849808},                               // 13 bytes, int4 405849808
		{"abcdefghijklmn", 315215413},                              // 14 bytes, int4 315215413
		{"abcdefghijklmno", 2905683607},                            // 15 bytes, int4 -1389283689
		{"abcdefghijklmnop", 2215217627},                           // 16 bytes, int4 -2079749669
		{"abcdefghijklmnopq", 1648114242},                          // 17 bytes, int4 1648114242
		{"abcdefghijklmnopqr", 3342670044},                         // 18 bytes, int4 -952297252
		{"abcdefghijklmnopqrs", 3610316903},                        // 19 bytes, int4 -684650393
		{"abcdefghijklmnopqrst", 766334193},                        // 20 bytes, int4 766334193
		{"abcdefghijklmnopqrstu", 2124303250},                      // 21 bytes, int4 2124303250
		{"abcdefghijklmnopqrstuv", 4244358334},                     // 22 bytes, int4 -50608962
		{"abcdefghijklmnopqrstuvw", 3145591160},                    // 23 bytes, int4 -1149376136
		{"abcdefghijklmnopqrstuvwx", 1251586959},                   // 24 bytes, int4 1251586959
		{"abcdefghijklmnopqrstuvwxy", 980150893},                   // 25 bytes, int4 980150893
		{"abcdefghijklmnopqrstuvwxyz", 167831483},                  // 26 bytes, int4 167831483
		{"abcdefghijklmnopqrstuvwxyz0", 2371417900},                // 27 bytes, int4 -1923549396
		{"abcdefghijklmnopqrstuvwxyz01", 3658634959},               // 28 bytes, int4 -636332337
		{"abcdefghijklmnopqrstuvwxyz012", 3882936590},              // 29 bytes, int4 -412030706
		{"abcdefghijklmnopqrstuvwxyz0123", 89653194},               // 30 bytes, int4 89653194
		{"abcdefghijklmnopqrstuvwxyz01234", 3386594498},            // 31 bytes, int4 -908372798
		{"abcdefghijklmnopqrstuvwxyz012345", 1203288424},           // 32 bytes, int4 1203288424
		{"abcdefghijklmnopqrstuvwxyz0123456", 4275318021},          // 33 bytes, int4 -19649275
		{"abcdefghijklmnopqrstuvwxyz01234567", 4105871492},         // 34 bytes, int4 -189095804
		{"abcdefghijklmnopqrstuvwxyz012345678", 2819771289},        // 35 bytes, int4 -1475196007
		{"abcdefghijklmnopqrstuvwxyz0123456789", 1318422268},       // 36 bytes, int4 1318422268
		{"abcdefghijklmnopqrstuvwxyz0123456789A", 4272812773},      // 37 bytes, int4 -22154523
		{"abcdefghijklmnopqrstuvwxyz0123456789AB", 721360856},      // 38 bytes, int4 721360856
		{"abcdefghijklmnopqrstuvwxyz0123456789ABC", 4059781743},    // 39 bytes, int4 -235185553
		{"abcdefghijklmnopqrstuvwxyz0123456789ABCD", 1451736991},   // 40 bytes, int4 1451736991
		{"héllo wörld", 1823351448},                                // 13 bytes, int4 1823351448
		{"日本語のストリーム", 2702599987},                                  // 27 bytes, int4 -1592367309
		{"order-🎉-42", 2432517269},                                 // 13 bytes, int4 -1862450027
		{"Ω", 3059989518},                                          // 2 bytes, int4 -1234977778
		{"stream-00000000-0000-0000-0000-000000000000", 290353872}, // 43 bytes, int4 290353872
		{"\u00ff\u07ff\uffff\U0010ffff", 725658399},                // 11 bytes, int4 725658399
	}
	for _, tc := range tests {
		if got := streamhash.Hash(tc.in); got != tc.want {
			t.Errorf("Hash(%q) (%d bytes) = %d, PostgreSQL's hashtext gives %d (int4 %d)",
				tc.in, len(tc.in), got, tc.want, int32(tc.want))
		}
	}
}

func TestPartition(t *testing.T) {
	t.Parallel()
	ids := []string{"", "a", "order-42", "日本語のストリーム", "stream-00000000-0000-0000-0000-000000000000"}
	for _, id := range ids {
		if got := streamhash.Partition(id, 1); got != 0 {
			t.Errorf("Partition(%q, 1) = %d, want 0", id, got)
		}
		for _, n := range []int{2, 3, 7, 16, 1000, 1<<31 - 1} {
			got := streamhash.Partition(id, n)
			if want := int(streamhash.Hash(id)&0x7fffffff) % n; got != want {
				t.Errorf("Partition(%q, %d) = %d, want Hash without its top bit mod n = %d", id, n, got, want)
			}
			if got < 0 || got >= n {
				t.Errorf("Partition(%q, %d) = %d, outside [0, %d)", id, n, got, n)
			}
		}
	}
	// From the known values: hashtext('a') = 1075015857 and
	// hashtext('') = -1477818771, which is 669664877 without its sign bit.
	if got := streamhash.Partition("a", 10); got != 7 {
		t.Errorf(`Partition("a", 10) = %d, want 7`, got)
	}
	if got := streamhash.Partition("", 10); got != 7 {
		t.Errorf(`Partition("", 10) = %d, want 7 (the hash without its sign bit)`, got)
	}
}

func TestPartitionPanicsBelowOne(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Partition(\"a\", %d) did not panic", n)
				}
			}()
			streamhash.Partition("a", n)
		}()
	}
}
