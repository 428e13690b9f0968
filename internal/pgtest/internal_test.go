package pgtest

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5433/orig?sslmode=disable", "postgres://u:p@h:5433/new_db?sslmode=disable"},
		{"postgresql://h", "postgresql://h/new_db"},
		{"postgres://h/orig?dbname=other", "postgres://h/new_db"},
		{"host=/tmp user=u dbname=orig", "host=/tmp user=u dbname=orig dbname=new_db"},
	} {
		got, err := withDatabase(tc.in, "new_db")
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
		cfg, err := pgx.ParseConfig(got)
		require.NoError(t, err)
		require.Equal(t, "new_db", cfg.Database, got)
	}
}

func TestQuoteConnValue(t *testing.T) {
	t.Parallel()

	for _, v := range []string{"plain", "/tmp/es-pg-1/sock", `it's a \ db`, "two words"} {
		cfg, err := pgx.ParseConfig("host=/tmp dbname=" + quoteConnValue(v))
		require.NoError(t, err)
		require.Equal(t, v, cfg.Database)
	}
}

func TestClusterConf(t *testing.T) {
	t.Parallel()

	conf, err := clusterConf(map[string]string{"fsync": "on", "search_path": `"$user", it's`}, "/tmp/x/sock")
	require.NoError(t, err)
	require.Contains(t, conf, "fsync = 'on'\n")
	require.NotContains(t, conf, "fsync = 'off'")
	require.Contains(t, conf, "full_page_writes = 'off'\n")
	require.Contains(t, conf, `search_path = '"$user", it''s'`+"\n")
	require.Contains(t, conf, "unix_socket_directories = '/tmp/x/sock'\n")

	_, err = clusterConf(map[string]string{"bad name": "x"}, "/tmp/x/sock")
	require.Error(t, err)
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()

	require.Equal(t, []int{15}, versionOf("/usr/lib/postgresql/15/bin"))
	require.Equal(t, []int{9, 6}, versionOf("/usr/pgsql-9.6/bin"))
	require.Positive(t, compareVersions(versionOf("/usr/lib/postgresql/16/bin"), versionOf("/usr/lib/postgresql/9.6/bin")))
}

func TestWithExamplesSkipped(t *testing.T) {
	t.Parallel()

	require.Equal(t, "^Example", withExamplesSkipped(""))
	require.Equal(t, "TestSlow/big|^Example", withExamplesSkipped("TestSlow/big"))
}
