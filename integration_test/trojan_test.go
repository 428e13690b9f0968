package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// TestTrojanPlants proves that no object a less privileged login creates
// runs inside es: a login with no es grants but CREATE on public plants an
// object under every operator, function and type name the schema's SQL
// uses (trojan_names_test.go derives them from the SQL, trojan_plants_test.go
// plants them); then
//   - the owner (a login that is not a superuser) migrates again, which
//     installs the code package again;
//   - the owner and a superuser, each with the default search_path and with
//     public before pg_catalog, call every function of the schema (on its
//     error paths too), decode the cases of decode_test.go (up to 2 KiB,
//     and headers of every width), read the views, try to change events,
//     build the README's expression indexes and ANALYZE;
//   - a login granted <schema>_writer plants the same objects in its own
//     pg_temp and calls the SECURITY DEFINER functions (which run as the
//     owner) with pg_temp and public before pg_catalog; its appends run
//     the expression indexes' decoders as the owner.
//
// No plant may run: each raises a NOTICE when it does, which reaches the
// client even when the call catches the error and rolls back its
// subtransaction (try_msgpack_to_jsonb). The failure lists every plant
// that ran, with what ran it and as whom. Every call must also return what
// it returns in a session that sees no plant (and, for the main calls, the
// values written here), so that a fix cannot pass by breaking a function;
// and self-checks prove that the victims' own unqualified SQL does pick
// the plants, so that the test cannot pass by planting nothing.
func TestTrojanPlants(t *testing.T) {
	t.Parallel()
	env := setupTrojan(t)

	victims := []struct {
		name string
		cfg  *pgx.ConnConfig
	}{{"owner", env.ownerCfg}, {"superuser", env.superCfg}}
	paths := []struct{ name, searchPath, arrow string }{
		// The default search_path: pg_catalog is searched first, so only a
		// plant pg_catalog has no exact match for can be picked.
		{"default", `"$user", public`, "->>"},
		// public before pg_catalog: a plant with pg_catalog's own signature
		// is picked. The caller's own SQL then resolves through public too:
		// the test's statements qualify their operators.
		{"public-first", "public, pg_catalog", "OPERATOR(pg_catalog.->>)"},
	}
	// Each session is a test of its own, in parallel: every call runs in a
	// transaction that is rolled back, so they leave the log as it is.
	t.Run("Sessions", func(t *testing.T) {
		t.Run("owner-migrating", func(t *testing.T) {
			env.reinstall.requireNoneFired(t) // it ran in setupTrojan, before the other sessions
		})
		for _, v := range victims {
			for _, p := range paths {
				t.Run(v.name+"/"+p.name, func(t *testing.T) {
					t.Parallel()
					ctx := testContext(t, 5*time.Minute)
					cfg := v.cfg.Copy()
					cfg.RuntimeParams["search_path"] = p.searchPath
					s := env.session(t, ctx, cfg, v.name+" with search_path "+p.searchPath, p.arrow)
					for _, c := range env.calls {
						s.check(t, ctx, c)
					}
					// The plants work: the victim's own unqualified SQL picks them.
					if p.name == "public-first" {
						for _, sc := range env.selfChecks["public-first"] {
							s.selfCheck(t, ctx, sc)
						}
					}
					for _, sc := range env.selfChecks["default"] {
						s.selfCheck(t, ctx, sc)
					}
					s.requireNoneFired(t)
				})
			}
		}

		t.Run("writer", func(t *testing.T) {
			// The writer plants the same objects in its own pg_temp, then
			// calls the functions that run as the owner with its pg_temp
			// and public before pg_catalog (left out, pg_catalog would be
			// searched first).
			t.Parallel()
			ctx := testContext(t, 5*time.Minute)
			s := env.session(t, ctx, env.writerCfg, "writer with search_path pg_temp, public, pg_catalog", "->>")
			planted := plantAll(t, ctx, s.conn, "pg_temp", "t", env.specs)
			require.NotEmpty(t, planted)
			_, err := s.conn.Exec(ctx, "SET search_path = pg_temp, public, pg_catalog")
			require.NoError(t, err)
			for _, c := range env.calls {
				if c.writer {
					s.check(t, ctx, c)
				}
			}
			s.selfCheck(t, ctx, trojanSelfCheck{"a pg_temp operator",
				"NULL::pg_catalog.int8 OPERATOR(pg_temp.=) NULL::pg_catalog.int8", "pg_temp.=(bigint,bigint)"})
			if slices.Contains(planted, "type pg_temp.text") {
				s.selfCheck(t, ctx, trojanSelfCheck{"a pg_temp type", "NULL::text", "type pg_temp.text"})
			}
			s.requireNoneFired(t)
		})
	})

	env.logSummary(t)
}

// trojanEnv is a database of its own (the plants in public would disturb
// the other tests) with an es schema owned by a login that is not a
// superuser, events, a snapshot and a checkpoint, expression indexes on
// the events, and the plants of the login with no grants in public.
type trojanEnv struct {
	schema     string
	superCfg   *pgx.ConnConfig // a superuser on the database
	ownerCfg   *pgx.ConnConfig
	writerCfg  *pgx.ConnConfig // a login granted <schema>_writer and <schema>_forgetter
	specs      []plantSpec
	calls      []trojanCall
	reference  map[string]trojanResult // by call label
	selfChecks map[string][]trojanSelfCheck

	reinstall *trojanSession // the owner's session that migrated again, with the plants in place

	mu    sync.Mutex
	fired map[string]map[string]bool // plant -> "who/triggered by"
}

// trojanCall is one use of the schema. Its statements run in a transaction
// that is rolled back.
type trojanCall struct {
	fn     string                     // what triggers a plant, as the report names it: name/arguments, a view, CREATE INDEX, ...
	detail string                     // the case
	sql    []string                   // statements; the rows of the last one are the result. %[1]s is the schema, %[2]s the caller's ->>
	args   []any                      // arguments of the last statement
	code   string                     // the SQLSTATE it raises; "" = none
	want   func(rows []*string) error // checks the result (besides comparing it with the reference session's)
	sorted bool                       // compare the rows in any order
	retry  bool                       // read_all: the horizon may hold rows back for a moment
	writer bool                       // the writer calls it too
}

func (c trojanCall) label() string { return c.fn + " " + c.detail }

// trojanResult is what a call returned: rows as text, or a SQLSTATE.
type trojanResult struct {
	rows []*string
	code string
	msg  string // the error's message, when code is set
	err  error
}

// trojanSelfCheck is an expression of a victim's own that must run the
// plant named.
type trojanSelfCheck struct {
	what, expr, plant string
}

func setupTrojan(t *testing.T) *trojanEnv {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	admin := pgtest.Pool(t)
	var rnd [6]byte
	_, err := rand.Read(rnd[:])
	require.NoError(t, err)
	env := &trojanEnv{schema: "t_" + hex.EncodeToString(rnd[:]), fired: map[string]map[string]bool{}}
	s := env.schema
	reader, writer, snapshotter, adminRole := s+"_reader", s+"_writer", s+"_snapshotter", s+"_admin"
	keyholder, forgetter := s+"_keyholder", s+"_forgetter"

	// Cleanups run last in, first out: the database goes first, then the
	// logins and roles that had privileges in it.
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), fmt.Sprintf("DROP ROLE IF EXISTS %s, %s, %s, %s, %s, %s", reader, writer, snapshotter, adminRole, keyholder, forgetter))
		require.NoError(t, err)
	})
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %[1]s NOLOGIN; CREATE ROLE %[2]s NOLOGIN; CREATE ROLE %[3]s NOLOGIN; GRANT %[3]s TO %[2]s; "+
		"CREATE ROLE %[4]s NOLOGIN; GRANT %[4]s TO %[2]s; CREATE ROLE %[5]s NOLOGIN; CREATE ROLE %[6]s NOLOGIN",
		reader, writer, snapshotter, keyholder, forgetter, adminRole))
	require.NoError(t, err)
	ownerCfg := createLogin(t, ctx, admin, s+"_owner")
	planterCfg := createLogin(t, ctx, admin, s+"_planter")
	// The writer may also forget subjects and remove events, so that it
	// calls every SECURITY DEFINER function.
	writerCfg := createLogin(t, ctx, admin, s+"_app", writer, forgetter, adminRole)
	dbURL := pgtest.NewDatabase(t)
	superCfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	for _, cfg := range []*pgx.ConnConfig{ownerCfg, planterCfg, writerCfg} {
		cfg.Database = superCfg.Database
	}
	env.superCfg, env.ownerCfg, env.writerCfg = superCfg, ownerCfg, writerCfg

	cleanCfg := superCfg.Copy() // sees no plant: pg_catalog first, no public
	cleanCfg.RuntimeParams["search_path"] = "pg_catalog, pg_temp"
	super := connectTrojan(t, ctx, cleanCfg, nil)
	_, err = super.Exec(ctx, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; GRANT CREATE ON SCHEMA public TO %s",
		pgx.Identifier{superCfg.Database}.Sanitize(), pgx.Identifier{ownerCfg.User}.Sanitize(), pgx.Identifier{planterCfg.User}.Sanitize()))
	require.NoError(t, err)
	owner := connectTrojan(t, ctx, ownerCfg, nil)
	_, err = pgstore.Migrate(ctx, owner, &pgstore.MigrateOpts{Schema: s})
	require.NoError(t, err)
	_ = owner.Close(ctx)

	// The log: order-1 with three events, a snapshot and a checkpoint, and
	// a decoder case of each kind (valid ones of type Valid, malformed ones
	// of type Malformed, in data and in metadata).
	cases := trojanDecodeCases(t)
	appendEvents := func(stream string, ids []uuid.UUID, types []string, data, meta [][]byte) {
		_, err := super.Exec(ctx, fmt.Sprintf("SELECT FROM %s.append($1, NULL, $2, $3, $4, $5)", s), stream, ids, types, data, meta)
		require.NoError(t, err, stream)
	}
	orderIDs := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	appendEvents("order-1", orderIDs, []string{"Placed", "Noted", "Noted"},
		[][]byte{mustMsgpack(t, map[string]any{"k": "v"}), {0x80}, {0x80}},
		[][]byte{mustMsgpack(t, map[string]any{"correlation_id": "c-1", "causation_id": "x-1"}), nil, {0xc1}})
	var ids []uuid.UUID
	var types []string
	var data, meta [][]byte
	for i, c := range cases {
		if !c.sample {
			continue
		}
		ids = append(ids, uuid.New())
		data = append(data, c.data)
		if c.malformed {
			types = append(types, "Malformed")
			meta = append(meta, c.data)
		} else {
			types = append(types, "Valid")
			meta = append(meta, mustMsgpack(t, map[string]any{"correlation_id": fmt.Sprint("c-", i), "causation_id": c.name}))
		}
	}
	appendEvents("corpus-1", ids, types, data, meta)
	_, err = super.Exec(ctx, fmt.Sprintf(`SELECT %[1]s.save_snapshot('order-1', 2, 1, '\x80'); SELECT %[1]s.advance_checkpoint('sub-1', NULL, NULL, '5', 5);
		SELECT %[1]s.subject_key('customer-1', true); SELECT %[1]s.forget_subject('customer-forgotten')`, s))
	require.NoError(t, err)
	// Expression indexes on the events: every append evaluates them as
	// the owner (the writing functions are SECURITY DEFINER).
	_, err = super.Exec(ctx, fmt.Sprintf(`
		CREATE INDEX trojan_data_idx ON %[1]s.events ((%[1]s.try_msgpack_to_jsonb(data) OPERATOR(pg_catalog.->>) 'k'));
		CREATE INDEX trojan_meta_idx ON %[1]s.events ((%[1]s.try_msgpack_to_jsonb(metadata) OPERATOR(pg_catalog.->>) 'correlation_id'));
		CREATE INDEX trojan_valid_idx ON %[1]s.events ((%[1]s.msgpack_to_jsonb(data) OPERATOR(pg_catalog.->>) 'k'))
		 WHERE event_type OPERATOR(pg_catalog.=) 'Valid'`, s))
	require.NoError(t, err)

	env.calls = trojanCalls(t, s, orderIDs, cases)
	env.requireEveryFunctionCalled(t, ctx, super)
	t.Logf("%d calls per session; %d decoder cases, %d of them in the log", len(env.calls), len(cases), len(ids))

	// The login with no grants plants, with pg_catalog's catalogs.
	planter := connectTrojan(t, ctx, planterCfg, nil)
	env.specs = plantSpecs(t, ctx, planter, schemaSQLNames(t))
	planted := plantAll(t, ctx, planter, "public", "p", env.specs)
	require.NotEmpty(t, planted)
	_ = planter.Close(ctx)
	env.selfChecks = trojanSelfChecks(t, ctx, super)

	// The owner migrates again (as every deployment does), which installs
	// the code package again: its DO blocks run as the owner, its views
	// are bound to the operators the owner's search_path finds.
	migrateCfg := ownerCfg.Copy()
	migrateCfg.RuntimeParams["search_path"] = `"$user", public`
	env.reinstall = env.session(t, ctx, migrateCfg, `owner migrating with search_path "$user", public`, "")
	env.reinstall.notices.setCall("pgstore.Migrate")
	_, err = pgstore.Migrate(ctx, env.reinstall.conn, &pgstore.MigrateOpts{Schema: s})
	require.NoError(t, err)
	env.reinstall.fired = env.reinstall.notices.take()

	// The reference: a superuser session that sees no plant (pg_catalog
	// first, public not in its search_path).
	ref := env.session(t, ctx, cleanCfg, "reference", "OPERATOR(pg_catalog.->>)")
	waitFor(t, ctx, "read_all returns every event", func() bool {
		var all, events int64
		require.NoError(t, ref.conn.QueryRow(ctx, fmt.Sprintf(
			"SELECT (SELECT count(*) FROM %[1]s.read_all('0', 0, 100000)), (SELECT count(*) FROM %[1]s.events)", s)).Scan(&all, &events))
		return all == events
	})
	env.reference = map[string]trojanResult{}
	for _, c := range env.calls {
		_, dup := env.reference[c.label()]
		require.False(t, dup, "two calls labelled %q", c.label())
		res := ref.run(ctx, c)
		require.Empty(t, env.problem(c, res), "reference: %s", c.label())
		env.reference[c.label()] = res
	}
	require.Empty(t, ref.notices.take(), "the reference session ran plants")
	return env
}

// connectTrojan connects with cfg, closing at cleanup.
func connectTrojan(t *testing.T, ctx context.Context, cfg *pgx.ConnConfig, notices *trojanNotices) *pgx.Conn {
	t.Helper()
	cfg = cfg.Copy()
	cfg.RuntimeParams["client_min_messages"] = "notice"
	if notices != nil {
		cfg.OnNotice = notices.onNotice
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func mustMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// trojanSession is a connection of a victim (or the reference) that
// collects the notices of plants.
type trojanSession struct {
	env     *trojanEnv
	who     string
	arrow   string
	conn    *pgx.Conn
	notices *trojanNotices
	fired   []trojanFiring
}

func (env *trojanEnv) session(t *testing.T, ctx context.Context, cfg *pgx.ConnConfig, who, arrow string) *trojanSession {
	t.Helper()
	s := &trojanSession{env: env, who: who, arrow: arrow, notices: &trojanNotices{}}
	s.conn = connectTrojan(t, ctx, cfg, s.notices)
	return s
}

// run runs c in a transaction that it rolls back.
func (s *trojanSession) run(ctx context.Context, c trojanCall) trojanResult {
	s.notices.setCall(c.fn)
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return trojanResult{err: err}
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('es_trojan.call', $1, true), pg_catalog.set_config('statement_timeout', '60s', true)", c.label()); err != nil {
		return trojanResult{err: err}
	}
	var res trojanResult
	for i, stmt := range c.sql {
		var args []any
		if i == len(c.sql)-1 {
			args = c.args
		}
		rows, err := tx.Query(ctx, strings.NewReplacer("%[1]s", s.env.schema, "%[2]s", s.arrow).Replace(stmt), args...)
		if err == nil {
			res.rows = res.rows[:0]
			for rows.Next() {
				var v *string
				if len(rows.FieldDescriptions()) > 0 {
					err = rows.Scan(&v)
				}
				if err != nil {
					break
				}
				res.rows = append(res.rows, v)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		var pg *pgconn.PgError
		if errors.As(err, &pg) {
			res.code, res.msg = pg.Code, pg.Message
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
	}
	return res
}

// check runs c and checks its result; the plants that ran are checked at
// the end (requireNoneFired).
func (s *trojanSession) check(t *testing.T, ctx context.Context, c trojanCall) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := s.run(ctx, c)
		s.fired = append(s.fired, s.notices.take()...)
		problem := s.env.problem(c, res)
		if problem == "" {
			return
		}
		// The sessions run the same calls at once, each in a transaction
		// of its own: two of them that lock the same things in different
		// orders (an archive step, a detach, a retention step) may lose a
		// deadlock, which says nothing of what this test checks: run the
		// call again.
		deadlock := res.code == "40P01" && c.code != "40P01"
		// Only a result that differs waits for the horizon, not an error.
		if !deadlock && (!c.retry || res.err != nil || res.code != c.code) || time.Now().After(deadline) || ctx.Err() != nil {
			t.Errorf("%s: %s: %s", s.who, c.label(), problem)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// problem says what is wrong with res as the result of c, or "".
func (env *trojanEnv) problem(c trojanCall, res trojanResult) string {
	if res.err != nil {
		return res.err.Error()
	}
	if res.code != c.code {
		return fmt.Sprintf("SQLSTATE %q (%s), want %q", res.code, res.msg, c.code)
	}
	if c.sorted {
		slices.SortFunc(res.rows, func(a, b *string) int { return strings.Compare(texts([]*string{a})[0], texts([]*string{b})[0]) })
	}
	if c.want != nil {
		if err := c.want(res.rows); err != nil {
			return err.Error()
		}
	}
	ref, ok := env.reference[c.label()]
	if !ok { // computing the reference
		return ""
	}
	got, want := texts(res.rows), texts(ref.rows)
	if !slices.Equal(got, want) {
		return fmt.Sprintf("rows differ from the reference session's:\n got  %.2000q\n want %.2000q", got, want)
	}
	return ""
}

func texts(rows []*string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = "NULL"
		if r != nil {
			out[i] = *r
		}
	}
	return out
}

// selfCheck runs a query of the victim's own that must run a plant.
func (s *trojanSession) selfCheck(t *testing.T, ctx context.Context, sc trojanSelfCheck) {
	t.Helper()
	sql := "SELECT (" + sc.expr + ")::pg_catalog.text"
	res := s.run(ctx, trojanCall{fn: "self-check", detail: sc.what, sql: []string{sql}})
	require.NoError(t, res.err, sql)
	require.Empty(t, res.code, "%s: %s", sql, res.msg)
	fired := s.notices.take()
	require.True(t, slices.ContainsFunc(fired, func(f trojanFiring) bool { return f.Plant == sc.plant }),
		"self-check (%s): %s in the session of the %s did not run plant %s (ran %v): the plants do not work, the test proves nothing",
		sc.what, sql, s.who, sc.plant, fired)
}

// requireNoneFired fails the test with the plants that ran in the session,
// and records them for the summary.
func (s *trojanSession) requireNoneFired(t *testing.T) {
	t.Helper()
	byPlant := map[string]map[string]bool{}
	for _, f := range s.fired {
		if byPlant[f.Plant] == nil {
			byPlant[f.Plant] = map[string]bool{}
		}
		byPlant[f.Plant][fmt.Sprintf("%s (as %s)", f.Call, f.User)] = true
	}
	s.env.mu.Lock()
	for plant, calls := range byPlant {
		if s.env.fired[plant] == nil {
			s.env.fired[plant] = map[string]bool{}
		}
		for call := range calls {
			s.env.fired[plant][s.who+": "+call] = true
		}
	}
	s.env.mu.Unlock()
	if len(byPlant) == 0 {
		return
	}
	var b strings.Builder
	for _, plant := range slices.Sorted(maps.Keys(byPlant)) {
		fmt.Fprintf(&b, "\n  %s <- %s", plant, strings.Join(slices.Sorted(maps.Keys(byPlant[plant])), ", "))
	}
	t.Errorf("%d planted objects ran in the session of the %s (plant <- what ran it):%s", len(byPlant), s.who, b.String())
}

// logSummary logs every plant that ran, with who ran it and through what.
func (env *trojanEnv) logSummary(t *testing.T) {
	env.mu.Lock()
	defer env.mu.Unlock()
	if len(env.fired) == 0 {
		return
	}
	var b strings.Builder
	for _, plant := range slices.Sorted(maps.Keys(env.fired)) {
		fmt.Fprintf(&b, "\n%s", plant)
		for _, by := range slices.Sorted(maps.Keys(env.fired[plant])) {
			fmt.Fprintf(&b, "\n    %s", by)
		}
	}
	t.Logf("planted objects that ran (%d):%s", len(env.fired), b.String())
}

// requireEveryFunctionCalled fails when a function of the schema has no
// call, or a SECURITY DEFINER one no call by the writer.
func (env *trojanEnv) requireEveryFunctionCalled(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	t.Helper()
	rows, err := conn.Query(ctx, `
		SELECT p.proname || '/' || p.pronargs, p.prosecdef
		  FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = $1::pg_catalog.regnamespace ORDER BY 1`, env.schema)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var key string
		var secdef bool
		require.NoError(t, rows.Scan(&key, &secdef))
		n++
		require.True(t, slices.ContainsFunc(env.calls, func(c trojanCall) bool { return c.fn == key }),
			"function %s has no call in trojanCalls: add one", key)
		if secdef {
			require.True(t, slices.ContainsFunc(env.calls, func(c trojanCall) bool { return c.fn == key && c.writer }),
				"SECURITY DEFINER function %s has no call by the writer in trojanCalls: add one", key)
		}
	}
	require.NoError(t, rows.Err())
	require.NotZero(t, n)
}

// trojanSelfChecks derives, from the plants in public, queries that must
// run one: an exact duplicate of a pg_catalog operator (picked with public
// first), an operator on arguments pg_catalog has no exact operator for
// (picked with the default search_path too), a type, and a function.
func trojanSelfChecks(t *testing.T, ctx context.Context, conn *pgx.Conn) map[string][]trojanSelfCheck {
	t.Helper()
	checks := map[string][]trojanSelfCheck{
		"public-first": {{"an operator with pg_catalog's signature",
			"NULL::pg_catalog.int8 = NULL::pg_catalog.int8", "public.=(bigint,bigint)"}},
	}
	var op, left, right string
	err := conn.QueryRow(ctx, `
		SELECT o.oprname::text, pg_catalog.format_type(o.oprleft, NULL), pg_catalog.format_type(o.oprright, NULL)
		  FROM pg_catalog.pg_operator AS o
		 WHERE o.oprnamespace = 'public'::pg_catalog.regnamespace
		   AND o.oprleft = ANY ('{int2,int4,int8}'::pg_catalog.regtype[]) AND o.oprright = ANY ('{int2,int4,int8}'::pg_catalog.regtype[])
		   AND NOT EXISTS (SELECT FROM pg_catalog.pg_operator AS c
		                    WHERE c.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.oprname = o.oprname
		                      AND c.oprleft = o.oprleft AND c.oprright = o.oprright)
		 ORDER BY 1, 2, 3 LIMIT 1`).Scan(&op, &left, &right)
	require.NoError(t, err, "no planted integer operator that pg_catalog lacks")
	checks["default"] = append(checks["default"], trojanSelfCheck{"an operator on mixed integer types",
		fmt.Sprintf("NULL::pg_catalog.%s %s NULL::pg_catalog.%s", typeIdent(left), op, typeIdent(right)),
		fmt.Sprintf("public.%s(%s,%s)", op, left, right)})

	var typ string
	if err := conn.QueryRow(ctx, `
		SELECT t.typname::text FROM pg_catalog.pg_type AS t
		 WHERE t.typnamespace = 'public'::pg_catalog.regnamespace AND t.typtype = 'd' ORDER BY 1 LIMIT 1`).Scan(&typ); err == nil {
		checks["public-first"] = append(checks["public-first"], trojanSelfCheck{"a type",
			fmt.Sprintf("NULL::%s", pgx.Identifier{typ}.Sanitize()), "type public." + typ})
	}
	var fn string
	if err := conn.QueryRow(ctx, `
		SELECT p.proname::text FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'public'::pg_catalog.regnamespace AND p.pronargs = 0 AND p.prokind = 'f' AND NOT p.proretset
		   AND p.proname NOT LIKE 'es\_trojan%' ORDER BY 1 LIMIT 1`).Scan(&fn); err == nil {
		checks["public-first"] = append(checks["public-first"], trojanSelfCheck{"a function with pg_catalog's signature",
			fmt.Sprintf("%s()", pgx.Identifier{fn}.Sanitize()), "public." + fn + "()"})
	}
	return checks
}

// typeIdent turns format_type's bigint into int8 (pg_catalog.bigint is no type name).
func typeIdent(formatted string) string {
	return map[string]string{"smallint": "int2", "integer": "int4", "bigint": "int8"}[formatted]
}

// trojanDecodeCase is an input of the decoder: the cases of
// decode_test.go that are small, and headers of each width with few items.
type trojanDecodeCase struct {
	name      string
	data      []byte
	json      string // the Go reference's rendering; "" when malformed
	malformed bool
	// sample: one case of each kind (and each malformed one), which the
	// log holds and try_msgpack_to_jsonb decodes too. Every use of the
	// log decodes them all (the view several times per row): with plants
	// running in every operator, the whole corpus would take minutes.
	sample bool
}

func trojanDecodeCases(t *testing.T) []trojanDecodeCase {
	t.Helper()
	var cases []trojanDecodeCase
	for _, c := range decodeCorpus(t) {
		if len(c.data) > 2048 { // the widths they stand for are below, with few items
			continue
		}
		want, err := renderJSON(c.data)
		require.NoError(t, err, c.name)
		cases = append(cases, trojanDecodeCase{name: c.name, data: c.data, json: want})
	}
	for _, c := range []struct {
		name string
		data []byte
		json string
	}{
		{"str32 of 3 bytes", []byte{0xdb, 0, 0, 0, 3, 'a', 'b', 'c'}, `"abc"`},
		{"bin32 of 2 bytes", []byte{0xc6, 0, 0, 0, 2, 1, 2}, `"AQI="`},
		{"ext32 of 2 bytes", []byte{0xc9, 0, 0, 0, 2, 5, 1, 2}, `{"ext": 5, "data": "AQI="}`},
		{"array32 of 2 items", []byte{0xdd, 0, 0, 0, 2, 1, 2}, `[1, 2]`},
		{"map32 of 1 entry", []byte{0xdf, 0, 0, 0, 1, 0xa1, 'k', 1}, `{"k": 1}`},
		{"container keys", []byte{0x82, 0x92, 0x01, 0x02, 0xa1, 'x', 0x81, 0xa1, 'a', 0x90, 0xa1, 'y'}, `{"[1, 2]": "x", "{\"a\": []}": "y"}`},
		{"extension key", []byte{0x81, 0xd4, 0x03, 0x07, 0xc0}, `{"{\"ext\": 3, \"data\": \"Bw==\"}": null}`},
		{"512 nested arrays", append(bytesRepeat(0x91, 512), 0x01), strings.Repeat("[", 512) + "1" + strings.Repeat("]", 512)},
		{"encrypted personal value", append([]byte{0xc7, 34, 80, 1, 0, 3, 'c', '-', '1'}, bytesRepeat(0xab, 28)...),
			`{"personal": "encrypted", "subject": "c-1"}`},
	} {
		cases = append(cases, trojanDecodeCase{name: c.name, data: c.data, json: c.json})
	}
	for _, c := range malformedCorpus() {
		if len(c.data) <= 2048 {
			cases = append(cases, trojanDecodeCase{name: c.name, data: c.data, malformed: true})
		}
	}
	kinds := map[string]bool{}
	for i, c := range cases {
		kind, _, _ := strings.Cut(c.name, " ")
		cases[i].sample = c.malformed || !kinds[kind] || strings.Contains(c.name, "quote")
		kinds[kind] = true
	}
	return cases
}

func bytesRepeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// trojanCalls is every use of the schema: each function with valid
// arguments and on its error paths, the decoder on every case, the views,
// the immutability triggers, building expression indexes and ANALYZE.
func trojanCalls(t *testing.T, schema string, orderIDs []uuid.UUID, cases []trojanDecodeCase) []trojanCall {
	t.Helper()
	row := func(cols string) string { return "SELECT (" + cols + ")::pg_catalog.text FROM " }
	each := "SELECT r::pg_catalog.text FROM "
	newIDs := []uuid.UUID{uuid.New(), uuid.New()}
	samples := 0
	for _, c := range cases {
		samples += btoi(c.sample)
	}
	calls := []trojanCall{
		{fn: "read_stream/3", detail: "limit", sql: []string{each + "%[1]s.read_stream('order-1', 1, $1) AS r"}, args: []any{10}},
		{fn: "read_stream/3", detail: "defaults", sql: []string{each + "%[1]s.read_stream('corpus-1') AS r"}},
		{fn: "read_stream/3", detail: "from 2", sql: []string{each + "%[1]s.read_stream('order-1', 2, NULL) AS r"}},
		{fn: "read_stream/3", detail: "versions", sql: []string{"SELECT r.version::pg_catalog.text FROM %[1]s.read_stream('order-1', 2, NULL) AS r"}, want: rowsAre("2", "3")},
		{fn: "read_stream/3", detail: "empty stream id", sql: []string{each + "%[1]s.read_stream('', 1, $1) AS r"}, args: []any{10}, code: "PE003"},
		{fn: "read_stream/3", detail: "negative count", sql: []string{each + "%[1]s.read_stream('order-1', 1, $1) AS r"}, args: []any{-1}, code: "PE003"},
		{fn: "read_stream_backward/3", detail: "limit", sql: []string{each + "%[1]s.read_stream_backward('order-1', NULL, $1) AS r"}, args: []any{10}},
		{fn: "read_stream_backward/3", detail: "from 2", sql: []string{each + "%[1]s.read_stream_backward('order-1', 2, 1) AS r"}},
		{fn: "read_stream_backward/3", detail: "versions", sql: []string{"SELECT r.version::pg_catalog.text FROM %[1]s.read_stream_backward('order-1', NULL, $1) AS r"}, args: []any{10}, want: rowsAre("3", "2", "1")},
		{fn: "read_stream_backward/3", detail: "empty stream id", sql: []string{each + "%[1]s.read_stream_backward('', NULL, $1) AS r"}, args: []any{10}, code: "PE003"},
		{fn: "read_all/5", detail: "all", sql: []string{each + "%[1]s.read_all('0', 0, $1) AS r"}, args: []any{100000}, retry: true},
		{fn: "read_all/5", detail: "filtered", sql: []string{each + "%[1]s.read_all('0', 0, 100000, '{order}', '{Noted}') AS r"}, retry: true},
		{fn: "read_all/5", detail: "a category", retry: true, want: rowsAre("(order-1,1)", "(order-1,2)", "(order-1,3)"),
			sql: []string{row("r.stream_id, r.version") + "%[1]s.read_all('0', 0, 100000, '{order}') AS r"}},
		{fn: "read_all/5", detail: "after a position", sql: []string{each + "%[1]s.read_all('1', 1, 5, '{corpus}') AS r"}, retry: true},
		{fn: "read_all/5", detail: "negative count", sql: []string{each + "%[1]s.read_all('0', 0, $1) AS r"}, args: []any{-1}, code: "PE003"},
		{fn: "stream_info/1", detail: "existing", sql: []string{each + "%[1]s.stream_info('order-1') AS r"}},
		{fn: "stream_info/1", detail: "version", sql: []string{row("r.version, r.stream_exists") + "%[1]s.stream_info('order-1') AS r"}, want: rowsAre("(3,t)")},
		{fn: "stream_info/1", detail: "missing", sql: []string{each + "%[1]s.stream_info('missing-1') AS r"}},
		{fn: "stream_info/1", detail: "empty", sql: []string{each + "%[1]s.stream_info('') AS r"}, code: "PE003"},
		{fn: "load/2", detail: "with snapshot", sql: []string{each + "%[1]s.load('order-1', 1) AS r"}},
		{fn: "load/2", detail: "versions", want: rowsAre("(2,t)", "(3,f)"),
			sql: []string{row("r.version, r.snapshot_state IS NOT NULL") + "%[1]s.load('order-1', 1) AS r"}},
		{fn: "load/2", detail: "other schema version", sql: []string{each + "%[1]s.load('order-1', 2) AS r"}},
		{fn: "load/2", detail: "empty", sql: []string{each + "%[1]s.load('', 1) AS r"}, code: "PE003"},
		{fn: "read_checkpoint/1", detail: "existing", sql: []string{each + "%[1]s.read_checkpoint('sub-1') AS r"}},
		{fn: "read_checkpoint/1", detail: "position", want: rowsAre("(5,5,t)"),
			sql: []string{row("r.transaction_id, r.global_position, r.checkpoint_exists") + "%[1]s.read_checkpoint('sub-1') AS r"}},
		{fn: "read_checkpoint/1", detail: "missing", sql: []string{each + "%[1]s.read_checkpoint('sub-9') AS r"}},
		{fn: "read_checkpoint/1", detail: "empty", sql: []string{each + "%[1]s.read_checkpoint('') AS r"}, code: "PE003"},
		{fn: "msgpack_float_text/2", detail: "float4", sql: []string{"SELECT %[1]s.msgpack_float_text(0.1, true)"}, want: rowsAre("0.1")},
		{fn: "msgpack_float_text/2", detail: "float8", sql: []string{"SELECT %[1]s.msgpack_float_text(0.1, false)"}, want: rowsAre("0.1")},
		{fn: "invalid_argument/4", detail: "raises", sql: []string{"SELECT %[1]s.invalid_argument('f', 'arg', 'is bad', 1)::pg_catalog.text"}, code: "PE003"},
		{fn: "refuse_event_change/0", detail: "called directly", sql: []string{"SELECT %[1]s.refuse_event_change()::pg_catalog.text"}, code: "0A000"},

		{fn: "append/7", detail: "one event", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + "%[1]s.append('order-1', 3, $1, '{Noted}', $2) AS r"}},
		{fn: "append/7", detail: "two events with metadata", writer: true, args: []any{newIDs, [][]byte{{0x80}, {0x01}}, [][]byte{{0x80}, nil}}, want: rowsAre("(5,4)"),
			sql: []string{row("r.stream_version, r.first_version") + "%[1]s.append('order-1', NULL, $1, '{Noted,Noted}', $2, $3) AS r"}},
		{fn: "append/7", detail: "two events with schema versions", writer: true, args: []any{newIDs, [][]byte{{0x80}, {0x01}}, []int32{2, 3}}, want: rowsAre("(5,4)"),
			sql: []string{row("r.stream_version, r.first_version") + "%[1]s.append('order-1', NULL, $1, '{Noted,Noted}', $2, NULL, $3) AS r"}},
		{fn: "append/7", detail: "schema version 0", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, code: "PE003",
			sql: []string{each + "%[1]s.append('order-1', NULL, $1, '{Noted}', $2, NULL, '{0}') AS r"}},
		{fn: "append/7", detail: "new stream", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, want: rowsAre("(1,1)"),
			sql: []string{row("r.stream_version, r.first_version") + "%[1]s.append('order-2', 0, $1, '{Noted}', $2) AS r"}},
		{fn: "append/7", detail: "idempotent retry", writer: true, args: []any{orderIDs[:2], [][]byte{{0x80}, {0x80}}}, want: rowsAre("(2,1)"),
			sql: []string{row("r.stream_version, r.first_version") + "%[1]s.append('order-1', 0, $1, '{Placed,Noted}', $2) AS r"}},
		{fn: "append/7", detail: "wrong expected version", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, code: "PE001",
			sql: []string{each + "%[1]s.append('order-1', 1, $1, '{Noted}', $2) AS r"}},
		{fn: "append/7", detail: "event id in another stream", writer: true, args: []any{orderIDs[2:], [][]byte{{0x80}}}, code: "PE002",
			sql: []string{each + "%[1]s.append('order-3', NULL, $1, '{Noted}', $2) AS r"}},
		{fn: "append/7", detail: "empty stream id", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, code: "PE003",
			sql: []string{each + "%[1]s.append('', NULL, $1, '{Noted}', $2) AS r"}},
		{fn: "append/9", detail: "with a snapshot", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + `%[1]s.append('order-1', 3, $1, '{Noted}', $2, NULL, 1, '\x80') AS r`}},
		{fn: "append/9", detail: "with a snapshot and schema versions", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + `%[1]s.append('order-1', 3, $1, '{Noted}', $2, NULL, 1, '\x80', '{2}') AS r`}},
		{fn: "append/9", detail: "half a snapshot", writer: true, args: []any{newIDs[:1], [][]byte{{0x80}}}, code: "PE003",
			sql: []string{each + "%[1]s.append('order-1', 3, $1, '{Noted}', $2, NULL, 1, NULL) AS r"}},
		{fn: "append_json/7", detail: "defaults", writer: true, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + `%[1]s.append_json('order-1', 'Noted', '{"k": [1, 0.5, "x", null, true]}') AS r`}},
		{fn: "jsonb_to_msgpack/1", detail: "every kind", want: rowsAre(`{"k": [1, 0.5, "x", null, true, {"big": 18446744073709551615, "neg": -40}]}`),
			sql: []string{`SELECT %[1]s.msgpack_to_jsonb(%[1]s.jsonb_to_msgpack('{"k": [1, 0.5, "x", null, true, {"big": 18446744073709551615, "neg": -40}]}'))::pg_catalog.text`}},
		{fn: "msgpack_str_header/1", detail: "str8", want: rowsAre(`\xd928`), sql: []string{"SELECT %[1]s.msgpack_str_header(40)::pg_catalog.text"}},
		{fn: "msgpack_number/1", detail: "float", want: rowsAre(`\xcb3ff8000000000000`), sql: []string{"SELECT %[1]s.msgpack_number(1.5)::pg_catalog.text"}},
		{fn: "append_event/7", detail: "defaults", writer: true, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + `%[1]s.append_event('order-1', 'Noted', '\x80') AS r`}},
		{fn: "append_event/7", detail: "every argument", writer: true, args: []any{newIDs[0]}, want: rowsAre("(4,4)"),
			sql: []string{row("r.stream_version, r.first_version") + `%[1]s.append_event('order-1', 'Noted', '\x80', '\x80', 3, $1, 2) AS r`}},
		{fn: "save_snapshot/4", detail: "newer", writer: true, want: rowsAre("true"), sql: []string{`SELECT %[1]s.save_snapshot('order-1', 3, 1, '\x80')::pg_catalog.text`}},
		{fn: "save_snapshot/4", detail: "older", writer: true, want: rowsAre("false"), sql: []string{`SELECT %[1]s.save_snapshot('order-1', 1, 1, '\x80')::pg_catalog.text`}},
		{fn: "save_snapshot/4", detail: "beyond the stream", writer: true, code: "PE008", sql: []string{`SELECT %[1]s.save_snapshot('order-1', 9, 1, '\x80')::pg_catalog.text`}},
		{fn: "save_snapshot/4", detail: "empty stream id", writer: true, code: "PE003", sql: []string{`SELECT %[1]s.save_snapshot('', 1, 1, '\x80')::pg_catalog.text`}},
		{fn: "advance_checkpoint/5", detail: "from the expected position", writer: true, want: rowsAre("(sub-1,6,6)"),
			sql: []string{row("r.subscription_id, r.transaction_id, r.global_position") + "%[1]s.advance_checkpoint('sub-1', '5', 5, '6', 6) AS r"}},
		{fn: "advance_checkpoint/5", detail: "new", writer: true, want: rowsAre("(sub-2,1,1)"),
			sql: []string{row("r.subscription_id, r.transaction_id, r.global_position") + "%[1]s.advance_checkpoint('sub-2', NULL, NULL, '1', 1) AS r"}},
		{fn: "advance_checkpoint/5", detail: "not at the expected position", writer: true, code: "PE007",
			sql: []string{each + "%[1]s.advance_checkpoint('sub-1', '1', 1, '7', 7) AS r"}},
		{fn: "advance_checkpoint/5", detail: "backwards", writer: true, code: "PE007",
			sql: []string{each + "%[1]s.advance_checkpoint('sub-1', NULL, NULL, '1', 1) AS r"}},
		{fn: "delete_checkpoint/1", detail: "existing", writer: true, want: rowsAre("true"), sql: []string{"SELECT %[1]s.delete_checkpoint('sub-1')::pg_catalog.text"}},
		{fn: "delete_checkpoint/1", detail: "missing", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.delete_checkpoint('sub-9')::pg_catalog.text"}},
		{fn: "delete_checkpoint/1", detail: "empty", writer: true, code: "PE003", sql: []string{"SELECT %[1]s.delete_checkpoint('')::pg_catalog.text"}},
		{fn: "acquire_lease/3", detail: "take", writer: true, want: rowsAre("true"), sql: []string{"SELECT %[1]s.acquire_lease('sub-1', 'h-1', '1 minute')::pg_catalog.text"}},
		{fn: "acquire_lease/3", detail: "empty holder", writer: true, code: "PE003", sql: []string{"SELECT %[1]s.acquire_lease('sub-1', '', '1 minute')::pg_catalog.text"}},
		{fn: "renew_lease/3", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.renew_lease('sub-9', 'h-1', '1 minute')::pg_catalog.text"}},
		{fn: "renew_lease/3", detail: "null ttl", writer: true, code: "PE003", sql: []string{"SELECT %[1]s.renew_lease('sub-1', 'h-1', NULL)::pg_catalog.text"}},
		{fn: "release_lease/2", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.release_lease('sub-9', 'h-1')::pg_catalog.text"}},
		{fn: "log_end/0", detail: "the end", sql: []string{each + "%[1]s.log_end() AS r"}, retry: true},
		{fn: "log_hidden/2", detail: "from the start", sql: []string{"SELECT %[1]s.log_hidden('0', 0)::pg_catalog.text"}, retry: true},
		{fn: "log_behind/6", detail: "from the start", retry: true, sql: []string{"SELECT (b.events, b.hidden)::pg_catalog.text FROM %[1]s.log_behind('0', 0, '{order}', NULL) AS b"}},
		{fn: "log_behind/6", detail: "a partition", retry: true, sql: []string{"SELECT (b.events, b.hidden)::pg_catalog.text FROM %[1]s.log_behind('0', 0, NULL, NULL, 3, 8) AS b"}},
		{fn: "stream_partition/2", detail: "order-1 in 8", want: rowsAre("3"), sql: []string{"SELECT %[1]s.stream_partition('order-1', 8)::pg_catalog.text"}},
		{fn: "stream_partition/2", detail: "zero partitions", code: "PE003", sql: []string{"SELECT %[1]s.stream_partition('order-1', 0)::pg_catalog.text"}},
		{fn: "read_partition/7", detail: "a partition", sql: []string{each + "%[1]s.read_partition('0', 0, 100000, 3, 8) AS r"}, retry: true},
		{fn: "read_partition/7", detail: "partition out of range", sql: []string{each + "%[1]s.read_partition('0', 0, 100000, 8, 8) AS r"}, code: "PE003"},
		{fn: "read_partitions/7", detail: "two partitions", sql: []string{each + "%[1]s.read_partitions('0', 0, 100000, '{3,5}', 8) AS r"}, retry: true},
		{fn: "read_partitions/7", detail: "no partition named", sql: []string{each + "%[1]s.read_partitions('0', 0, 100000, '{}', 8) AS r"}, code: "PE003"},
		{fn: "join_group/4", detail: "join", writer: true, want: rowsAre(`(1,"{0,1,2,3}")`),
			sql: []string{"SELECT (j.members, j.free_partitions)::pg_catalog.text FROM %[1]s.join_group('grp-1', 'h-1', 4, '1 minute') AS j"}},
		{fn: "join_group/4", detail: "zero partitions", writer: true, code: "PE003", sql: []string{"SELECT j.members::pg_catalog.text FROM %[1]s.join_group('grp-1', 'h-1', 0, '1 minute') AS j"}},
		{fn: "take_partition/6", detail: "no such group", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.take_partition('grp-9/0-of-4', 'grp-9', 0, 4, 'h-1', '1 minute')::pg_catalog.text"}},
		{fn: "leave_group/2", detail: "not a member", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.leave_group('grp-9', 'h-1')::pg_catalog.text"}},
		{fn: "check_group_arguments/5", detail: "valid", sql: []string{"SELECT %[1]s.check_group_arguments('f', 'grp-1', 'h-1', 4, '1 minute')::pg_catalog.text"}},
		{fn: "group_partitions_held/2", detail: "none held", want: rowsAre("0"), sql: []string{"SELECT pg_catalog.count(*)::pg_catalog.text FROM %[1]s.group_partitions_held('grp-9', 4)"}},
		{fn: "log_horizon/0", detail: "above the log", want: rowsAre("true"), retry: true,
			sql: []string{"SELECT (%[1]s.log_horizon() OPERATOR(pg_catalog.>) '1'::pg_catalog.xid8)::pg_catalog.text"}},
		{fn: "keys_behind/2", detail: "far ahead", want: rowsAre("true"), sql: []string{"SELECT %[1]s.keys_behind(0, '4000000000')::pg_catalog.text"}},
		{fn: "keys_behind/2", detail: "not behind", want: rowsAre("false"), sql: []string{"SELECT %[1]s.keys_behind(0, '1')::pg_catalog.text"}},
		{fn: "raise_key_base/0", detail: "not behind", want: rowsAre("0"), sql: []string{"SELECT %[1]s.raise_key_base()::pg_catalog.text"}},
		{fn: "store_snapshot/4", detail: "older: kept", want: rowsAre("false"), sql: []string{`SELECT %[1]s.store_snapshot('order-1', 1, 1, '\x80')::pg_catalog.text`}},
		{fn: "check_lease_arguments/4", detail: "valid", sql: []string{"SELECT %[1]s.check_lease_arguments('f', 'sub-1', 'h-1', '1 minute')::pg_catalog.text"}},
		{fn: "check_checkpoint_position/3", detail: "the start", sql: []string{"SELECT %[1]s.check_checkpoint_position('f', '0', 0)::pg_catalog.text"}},
		{fn: "check_checkpoint_position/3", detail: "beyond", code: "PE003", sql: []string{"SELECT %[1]s.check_checkpoint_position('f', '4000000000', 1)::pg_catalog.text"}},
		{fn: "refuse_while_running/2", detail: "not running", sql: []string{"SELECT %[1]s.refuse_while_running('f', 'sub-9')::pg_catalog.text"}},
		{fn: "lease_live/2", detail: "own backend", want: rowsAre("true"), sql: []string{"SELECT %[1]s.lease_live(pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) '1 minute'::pg_catalog.interval, pg_catalog.pg_backend_pid())::pg_catalog.text"}},
		{fn: "subscription_running/1", detail: "not running", want: rowsAre("false"), sql: []string{"SELECT %[1]s.subscription_running('sub-9')::pg_catalog.text"}},
		{fn: "subscription_health/2", detail: "unknown", want: rowsAre("idle"), sql: []string{"SELECT h.health FROM %[1]s.subscription_health('sub-9') AS h"}},
		{fn: "subscription_ids/0", detail: "every id", sql: []string{"SELECT n::pg_catalog.text FROM %[1]s.subscription_ids() AS n"}, sorted: true},
		{fn: "subscriptions_view", detail: "every row", sorted: true, retry: true, sql: []string{"SELECT (v.subscription_id, v.health, v.events_behind)::pg_catalog.text FROM %[1]s.subscriptions_view AS v"}},
		{fn: "horizon_holders/0", detail: "runs", want: rowsAre("true"), sql: []string{"SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.>=) 0)::pg_catalog.text FROM %[1]s.horizon_holders()"}},
		{fn: "reset_checkpoint/3", detail: "to the start", writer: true, want: rowsAre("(sub-1,0,0)"),
			sql: []string{row("r.subscription_id, r.transaction_id, r.global_position") + "%[1]s.reset_checkpoint('sub-1', '0', 0) AS r"}},
		{fn: "reset_checkpoint/3", detail: "beyond", writer: true, code: "PE003",
			sql: []string{each + "%[1]s.reset_checkpoint('sub-1', '4000000000', 1) AS r"}},
		{fn: "holds_lease/2", detail: "not held", want: rowsAre("false"), sql: []string{"SELECT %[1]s.holds_lease('sub-9', 'h-1')::pg_catalog.text"}},
		{fn: "park_event/10", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.park_event('sub-9', 'h-1', '1', 1, 'order-1', '00000000-0000-0000-0000-000000000001', 'Noted', false, 'boom', 1)::pg_catalog.text"}},
		{fn: "parked_retried/6", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.parked_retried('sub-9', 'h-1', '1', 1, true, NULL)::pg_catalog.text"}},
		{fn: "retry_parked/3", detail: "nothing parked", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.retry_parked('sub-9', '1', 1)::pg_catalog.text"}},
		{fn: "skip_parked/3", detail: "nothing parked", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.skip_parked('sub-9', '1', 1)::pg_catalog.text"}},
		{fn: "report_status/7", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.report_status('sub-9', 'h-1', 'running', NULL, NULL, NULL, NULL)::pg_catalog.text"}},
		{fn: "report_status/7", detail: "unknown state", writer: true, code: "PE003", sql: []string{"SELECT %[1]s.report_status('sub-9', 'h-1', 'x', NULL, NULL, NULL, NULL)::pg_catalog.text"}},
		{fn: "report_replica/4", detail: "not held", writer: true, want: rowsAre("false"), sql: []string{"SELECT %[1]s.report_replica('sub-9', 'h-1', 'primary', NULL)::pg_catalog.text"}},
		{fn: "report_replica/4", detail: "negative lag", writer: true, code: "PE003", sql: []string{"SELECT %[1]s.report_replica('sub-9', 'h-1', 'primary', interval '-1 s')::pg_catalog.text"}},
		{fn: "subject_key/2", detail: "create", writer: true, want: rowsAre("32"),
			sql: []string{"SELECT pg_catalog.octet_length(%[1]s.subject_key('customer-1', true))::pg_catalog.text"}},
		{fn: "subject_key/2", detail: "none", writer: true, want: rowsAre("true"),
			sql: []string{"SELECT (%[1]s.subject_key('customer-9', false) IS NULL)::pg_catalog.text"}},
		{fn: "subject_key/2", detail: "forgotten", writer: true, code: "PE012",
			sql: []string{"SELECT %[1]s.subject_key('customer-forgotten', false)::pg_catalog.text"}},
		{fn: "subject_key/2", detail: "empty subject", writer: true, code: "PE003",
			sql: []string{"SELECT %[1]s.subject_key('', true)::pg_catalog.text"}},
		{fn: "forget_subject/1", detail: "with a key", writer: true, want: rowsAre("true"),
			sql: []string{"SELECT %[1]s.forget_subject('customer-1')::pg_catalog.text"}},
		{fn: "forget_subject/1", detail: "without a key", writer: true, want: rowsAre("true"),
			sql: []string{"SELECT %[1]s.forget_subject('customer-9')::pg_catalog.text"}},
		{fn: "forget_subject/1", detail: "again", writer: true, want: rowsAre("false"),
			sql: []string{"SELECT %[1]s.forget_subject('customer-forgotten')::pg_catalog.text"}},
		{fn: "forget_subject/1", detail: "audited", writer: true, want: rowsAre("(customer-1,t)"), sql: []string{
			"SELECT %[1]s.forget_subject('customer-1')::pg_catalog.text",
			"SELECT (e.subject_id, e.had_key)::pg_catalog.text FROM %[1]s.subject_erasures AS e WHERE e.subject_id OPERATOR(pg_catalog.=) 'customer-1'"}},

		{fn: "stream_visible_from/1", detail: "order-1", want: rowsAre("1"), sql: []string{"SELECT %[1]s.stream_visible_from('order-1')::pg_catalog.text"}},
		{fn: "soft_delete_stream/2", detail: "order-1", writer: true, want: rowsAre("3"), sql: []string{"SELECT %[1]s.soft_delete_stream('order-1', 3)::pg_catalog.text"}},
		{fn: "soft_delete_stream/2", detail: "then read", writer: true, want: rowsAre("0"),
			sql: []string{"SELECT %[1]s.soft_delete_stream('order-1')", "SELECT pg_catalog.count(*)::pg_catalog.text FROM %[1]s.read_stream('order-1') AS r"}},
		{fn: "restore_stream/1", detail: "order-1", writer: true, want: rowsAre("3"), sql: []string{"SELECT %[1]s.restore_stream('order-1')::pg_catalog.text"}},
		{fn: "tombstone_stream/2", detail: "order-1", writer: true, want: rowsAre("3"), sql: []string{"SELECT %[1]s.tombstone_stream('order-1', 3)::pg_catalog.text"}},
		{fn: "tombstone_stream/2", detail: "then append", writer: true, code: "PE004",
			sql: []string{"SELECT %[1]s.tombstone_stream('order-1')", `SELECT r.stream_version::pg_catalog.text FROM %[1]s.append_event('order-1', 'Noted', '\x80') AS r`}},
		{fn: "truncate_stream/2", detail: "order-1", writer: true, want: rowsAre("2", "2"),
			sql: []string{"SELECT %[1]s.truncate_stream('order-1', 2)", "SELECT r.version::pg_catalog.text FROM %[1]s.read_stream('order-1') AS r WHERE r.version OPERATOR(pg_catalog.<) 3 UNION ALL SELECT %[1]s.truncate_stream('order-1', 1)::pg_catalog.text"}},
		{fn: "set_stream_retention/3", detail: "keep 1", writer: true, want: rowsAre("(1,2)"),
			sql: []string{"SELECT %[1]s.set_stream_retention('order-1', 1, NULL)", row("r.streams_truncated, r.events_removed") + "%[1]s.apply_retention(10, 10) AS r"}},
		{fn: "set_category_retention/3", detail: "a day", writer: true, want: rowsAre("(0,0)"),
			sql: []string{"SELECT %[1]s.set_category_retention('order', NULL, '1 day')", row("r.streams_truncated, r.events_removed") + "%[1]s.apply_retention(10, 10) AS r"}},
		{fn: "apply_retention/2", detail: "a truncation", writer: true, want: rowsAre("(0,1)"), // the second step removes the second event
			sql: []string{"SELECT %[1]s.truncate_stream('order-1', 3)", row("r.streams_truncated, r.events_removed") + "%[1]s.apply_retention(1, 1) AS r", row("r.streams_truncated, r.events_removed") + "%[1]s.apply_retention() AS r"}},
		{fn: "check_stream_argument/2", detail: "valid", sql: []string{"SELECT %[1]s.check_stream_argument('f', 'order-1')::pg_catalog.text"}},
		{fn: "lock_stream/3", detail: "order-1", want: rowsAre("(t,3)"), sql: []string{row("l.present, l.version") + "%[1]s.lock_stream('f', 'order-1', 3) AS l"}},
		{fn: "raise_stream_deleted/3", detail: "raises", code: "PE004", sql: []string{"SELECT %[1]s.raise_stream_deleted('f', 'order-1', true)::pg_catalog.text"}},
		{fn: "raise_stream_not_found/2", detail: "raises", code: "PE011", sql: []string{"SELECT %[1]s.raise_stream_not_found('f', 'order-9')::pg_catalog.text"}},
		{fn: "remove_events/3", detail: "below 2", want: rowsAre("1"), sql: []string{"SELECT %[1]s.remove_events('order-1', 2, NULL)::pg_catalog.text"}},
		{fn: "check_retention_rule/3", detail: "valid", sql: []string{"SELECT %[1]s.check_retention_rule('f', 1, '1 day')::pg_catalog.text"}},
		{fn: "log_max_key/0", detail: "above the log", want: rowsAre("true"), sql: []string{"SELECT (%[1]s.log_max_key() OPERATOR(pg_catalog.>) '1'::pg_catalog.xid8)::pg_catalog.text"}},
		{fn: "archive_events/4", detail: "all but the last", writer: true, retry: true,
			sql: []string{"SELECT %[1]s.archive_events('18446744073709551615', 9223372036854775807)",
				"SELECT r.version::pg_catalog.text FROM %[1]s.read_stream('order-1', 1, NULL) AS r"}, want: rowsAre("1", "2", "3")},
		{fn: "archive_events/4", detail: "partitions of one event", writer: true, retry: true,
			sql: []string{"SELECT %[1]s.archive_events('18446744073709551615', 9223372036854775807, 1000, 1)",
				"SELECT r.version::pg_catalog.text FROM %[1]s.read_stream('order-1', 1, NULL) AS r"}, want: rowsAre("1", "2", "3")},
		{fn: "archive_partitions/0", detail: "after archiving", writer: true, retry: true, want: rowsAre("true"),
			sql: []string{"SELECT %[1]s.archive_events('18446744073709551615', 9223372036854775807, 1000, 1)",
				"SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.>) 1)::pg_catalog.text FROM %[1]s.archive_partitions() AS p"}},
		{fn: "archive_bounds/0", detail: "after archiving", writer: true, retry: true, want: rowsAre("true"),
			sql: []string{"SELECT %[1]s.archive_events('18446744073709551615', 9223372036854775807, 1000, 1)",
				"SELECT (pg_catalog.count(*) OPERATOR(pg_catalog.>) 1)::pg_catalog.text FROM %[1]s.archive_bounds() AS b"}},
		{fn: "detach_archive_partition/2", detail: "the oldest, forced", writer: true, retry: true, want: rowsAre("true"),
			sql: []string{"SELECT %[1]s.archive_events('18446744073709551615', 9223372036854775807, 1000, 1)",
				"SELECT (%[1]s.detach_archive_partition(b.partition_name, true) OPERATOR(pg_catalog.>) 0)::pg_catalog.text FROM %[1]s.archive_bounds() AS b ORDER BY b.from_transaction_id LIMIT 1"}},
		{fn: "detach_archive_partition/2", detail: "none", writer: true, code: "PE003",
			sql: []string{"SELECT %[1]s.detach_archive_partition('events_archive_1', false)::pg_catalog.text"}},
		{fn: "note_removed/3", detail: "nothing", sql: []string{"SELECT %[1]s.note_removed('order-9', '1', 1)::pg_catalog.text"}},
		{fn: "cover_archive/2", detail: "the first key", want: rowsAre("1"),
			sql: []string{"SELECT %[1]s.cover_archive('1', 10)", "SELECT pg_catalog.count(*)::pg_catalog.text FROM %[1]s.archive_bounds() AS b"}},
		{fn: "archive_removal_lock/0", detail: "takes it", sql: []string{"SELECT %[1]s.archive_removal_lock()::pg_catalog.text"}},
		{fn: "protect_archive_table/1", detail: "the archive", sql: []string{"SELECT %[1]s.protect_archive_table('%[1]s.events_archive')::pg_catalog.text"}},

		{fn: "events_view", detail: "every row", sorted: true, sql: []string{"SELECT v::pg_catalog.text FROM %[1]s.events_view AS v"}},
		{fn: "streams_view", detail: "every row", sorted: true, sql: []string{"SELECT v::pg_catalog.text FROM %[1]s.streams_view AS v"}},
		{fn: "streams_view", detail: "versions", sorted: true, want: rowsAre(fmt.Sprintf("(corpus-1,corpus,%d,)", samples), "(order-1,order,3,2)"),
			sql: []string{"SELECT (v.stream_id, v.category, v.version, v.snapshot_version)::pg_catalog.text FROM %[1]s.streams_view AS v"}},
		{fn: "events_view", detail: "order-1", want: rowsAre(`(1,"{""k"": ""v""}",c-1,x-1)`, "(2,{},,)", "(3,{},,)"),
			sql: []string{"SELECT (v.version, v.data, v.correlation_id, v.causation_id)::pg_catalog.text FROM %[1]s.events_view AS v WHERE v.stream_id OPERATOR(pg_catalog.=) 'order-1' ORDER BY v.version"}},
		{fn: "events_immutable trigger", detail: "UPDATE", code: "PE005", sql: []string{"UPDATE %[1]s.events SET event_type = 'Changed'"}},
		{fn: "events_immutable trigger", detail: "DELETE", code: "PE005", sql: []string{"DELETE FROM %[1]s.events"}},
		{fn: "events_no_truncate trigger", detail: "TRUNCATE", code: "PE005", sql: []string{"TRUNCATE %[1]s.events"}},
		// The README's expression indexes (LOCK first: two sessions building
		// indexes and analyzing at once would deadlock).
		{fn: "CREATE INDEX", detail: "on the decoders", sql: []string{
			"LOCK TABLE %[1]s.events IN SHARE UPDATE EXCLUSIVE MODE",
			"CREATE INDEX ON %[1]s.events ((%[1]s.try_msgpack_to_jsonb(data) %[2]s 'k'))",
			"CREATE INDEX ON %[1]s.events ((%[1]s.try_msgpack_to_jsonb(metadata) %[2]s 'correlation_id'))",
			"CREATE INDEX ON %[1]s.events ((%[1]s.msgpack_to_jsonb(data) %[2]s 'k')) WHERE event_type OPERATOR(pg_catalog.=) 'Valid'",
		}},
		{fn: "ANALYZE", detail: "with expression indexes", sql: []string{"LOCK TABLE %[1]s.events IN SHARE UPDATE EXCLUSIVE MODE", "ANALYZE %[1]s.events"}},
	}

	// Appends of every decoder case: the expression indexes decode them as
	// the owner.
	var ids []uuid.UUID
	var types []string
	var data [][]byte
	for _, c := range cases {
		if c.sample {
			ids = append(ids, uuid.New())
			data = append(data, c.data)
			types = append(types, map[bool]string{false: "Valid", true: "Malformed"}[c.malformed])
		}
	}
	calls = append(calls, trojanCall{fn: "append/7", detail: "a decoder case of each kind (expression indexes)", writer: true,
		args: []any{ids, types, data, data},
		sql:  []string{row("r.stream_version, r.first_version") + "%[1]s.append('corpus-2', NULL, $1, $2, $3, $4) AS r"}})

	// The decoders on every case.
	for _, c := range cases {
		for _, fn := range []string{"msgpack_to_jsonb", "try_msgpack_to_jsonb"} {
			if fn == "try_msgpack_to_jsonb" && !c.sample {
				continue
			}
			call := trojanCall{fn: fn + "/1", detail: c.name, args: []any{c.data},
				sql: []string{"SELECT %[1]s." + fn + "($1)::pg_catalog.text"}}
			switch {
			case c.malformed && fn == "msgpack_to_jsonb":
				call.code = "PE006"
			case c.malformed:
				call.want = func(rows []*string) error {
					if len(rows) != 1 || rows[0] != nil {
						return fmt.Errorf("want NULL, got %q", texts(rows))
					}
					return nil
				}
			default:
				call.want = jsonIs(c.json)
			}
			calls = append(calls, call)
			if strings.HasPrefix(c.name, "float") && !c.malformed {
				// Below extra_float_digits 1 the decoder calls msgpack_float_text.
				call.detail += " with extra_float_digits 0"
				call.sql = append([]string{"SELECT pg_catalog.set_config('extra_float_digits', '0', true)"}, call.sql...)
				calls = append(calls, call)
			}
		}
	}
	return calls
}

// rowsAre checks that the rows are want, in order (sorted calls: sorted).
func rowsAre(want ...string) func(rows []*string) error {
	return func(rows []*string) error {
		if got := texts(rows); !slices.Equal(got, want) {
			return fmt.Errorf("want rows %q, got %q", want, texts(rows))
		}
		return nil
	}
}

// jsonIs checks that the rows are one JSON value equal to want.
func jsonIs(want string) func(rows []*string) error {
	return func(rows []*string) error {
		if len(rows) != 1 || rows[0] == nil {
			return fmt.Errorf("want %.200s, got %q", want, texts(rows))
		}
		w, err := parseJSON(want)
		if err != nil {
			return err
		}
		g, err := parseJSON(*rows[0])
		if err != nil {
			return err
		}
		if path, ok := sameJSON(w, g, "$"); !ok {
			return fmt.Errorf("differs from the Go reference at %s:\n got  %.300s\n want %.300s", path, *rows[0], want)
		}
		return nil
	}
}
