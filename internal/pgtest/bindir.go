package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// BinDir returns the directory holding the PostgreSQL server binaries
// (initdb, postgres): the output of `pg_config --bindir` when initdb is
// there, else the newest /usr/lib/postgresql/*/bin (Debian, Ubuntu) or
// /usr/pgsql-*/bin (Red Hat) holding initdb, else the directory of the initdb
// found on PATH. It returns an error when none holds initdb.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if hasInitdb(dir) {
			return dir, nil
		}
	}

	var candidates []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		matches, _ := filepath.Glob(pattern)
		for _, dir := range matches {
			if hasInitdb(dir) {
				candidates = append(candidates, dir)
			}
		}
	}
	if len(candidates) > 0 {
		return slices.MaxFunc(candidates, func(a, b string) int {
			return compareVersions(versionOf(a), versionOf(b))
		}), nil
	}

	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", errors.New("pgtest: no PostgreSQL binaries found (no initdb via pg_config --bindir, /usr/lib/postgresql/*/bin or PATH)")
}

func hasInitdb(dir string) bool {
	if dir == "" {
		return false
	}
	info, err := os.Stat(filepath.Join(dir, "initdb"))
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

// versionOf extracts the version from a directory such as
// /usr/lib/postgresql/15/bin or /usr/pgsql-9.6/bin.
func versionOf(binDir string) []int {
	name := filepath.Base(filepath.Dir(binDir))
	name = strings.TrimPrefix(name, "pgsql-")
	var version []int
	for part := range strings.SplitSeq(name, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		version = append(version, n)
	}
	return version
}

func compareVersions(a, b []int) int {
	return slices.Compare(a, b)
}
