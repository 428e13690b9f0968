package integration_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// This file builds the plants of trojan_test.go: for every name the
// schema's SQL leaves to the search_path (trojan_names_test.go), objects of
// the same name in public or pg_temp that signal when they run and
// otherwise do what pg_catalog's would.

// trojanCommonTypes are the argument types of the plants besides those of
// pg_catalog's own signatures: operators get every pair of them that
// pg_catalog can apply the operator to, functions get them in place of
// polymorphic arguments.
var trojanCommonTypes = []string{
	"smallint", "integer", "bigint", "numeric", "double precision", "real",
	"text", "character varying", "name", `"char"`, "bytea", "boolean",
	"xid8", "xid", "jsonb", "json", "uuid", "timestamp with time zone", "interval", "bit", "oid",
	"regnamespace", "regtype", "pg_snapshot",
	"text[]", "bytea[]", "uuid[]", "jsonb[]", "integer[]", "bigint[]", "name[]",
}

// trojanFamilies are the types that take each other's place in a variant
// of a pg_catalog function: a bigint argument is also planted as smallint,
// integer, numeric, ...
var trojanFamilies = [][]string{
	{"smallint", "integer", "bigint", "numeric", "double precision", "real"},
	{"text", "character varying", "name", "character"},
}

// keywordTypes are the type names that are also keywords: the grammar
// reads them as pg_catalog's types (numeric, bit(64)), so a type of that
// name elsewhere is never picked.
var keywordTypes = []string{"bit", "numeric", "interval", "time", "timestamp", "char", "varchar"}

// plantSpec is one object to plant (the argument of es_trojan_plant).
type plantSpec struct {
	Kind  string   `json:"kind"`            // "op", "fn", "agg" or "type"
	Name  string   `json:"name,omitempty"`  // operator or function name
	Left  uint32   `json:"left,omitempty"`  // op: left type (0 = prefix)
	Right uint32   `json:"right,omitempty"` // op: right type
	Args  []uint32 `json:"args,omitempty"`  // fn: argument types
	Ret   uint32   `json:"ret,omitempty"`   // result type; 0 = as pg_catalog resolves it
	SetOf bool     `json:"setof,omitempty"` // fn: returns a set
	Vol   string   `json:"vol,omitempty"`   // fn: i, s or v
	OID   uint32   `json:"oid,omitempty"`   // fn, agg: the pg_catalog function to duplicate; type: the type
}

func (s plantSpec) key() string {
	return fmt.Sprintf("%s|%s|%d|%d|%v|%d", s.Kind, s.Name, s.Left, s.Right, s.Args, s.OID)
}

// plantCatalog is what the plants are derived from: pg_catalog's types,
// implicit casts, operators and functions.
type plantCatalog struct {
	types      map[uint32]pgType
	byName     map[string]pgType // by format_type: bigint, "char"
	byTypName  map[string]pgType // by typname: int8, char
	common     []pgType          // trojanCommonTypes
	family     map[uint32][]uint32
	elementish map[uint32]bool // anyelement and the like, "any"
	arrayish   map[uint32]bool // anyarray, anycompatiblearray
	implicit   map[[2]uint32]bool

	specs []plantSpec
	seen  map[string]bool
}

type pgType struct {
	OID      uint32
	TypName  string // pg_type.typname: int8
	Name     string // format_type: bigint
	Category string
	Array    uint32
	Elem     uint32
	Pseudo   bool
}

type pgOperator struct {
	Name                string
	Kind                string
	Left, Right, Result uint32
}

type pgFunction struct {
	OID        uint32
	Name       string
	Kind       string
	NArgs      int
	NDefaults  int
	ArgTypes   []uint32
	Variadic   uint32
	RetSet     bool
	RetType    uint32
	Volatile   string
	HasOutArgs bool
}

// plantSpecs derives the plants from the names of the schema's SQL and the
// catalog of conn's database: operators, then functions, then types.
func plantSpecs(t *testing.T, ctx context.Context, conn *pgx.Conn, names sqlNames) []plantSpec {
	t.Helper()
	c := loadPlantCatalog(t, ctx, conn)

	rows, err := conn.Query(ctx, `
		SELECT o.oprname::text, o.oprkind::text, o.oprleft, o.oprright, o.oprresult
		  FROM pg_catalog.pg_operator AS o
		 WHERE o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace AND o.oprname = ANY ($1) AND o.oprkind IN ('b', 'l')
		 ORDER BY 1, 2, 3, 4`, names.Ops)
	require.NoError(t, err)
	ops, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pgOperator])
	require.NoError(t, err)
	c.addOperators(ops)

	rows, err = conn.Query(ctx, `
		SELECT p.oid, p.proname::text, p.prokind::text, p.pronargs::int, p.pronargdefaults::int, p.proargtypes::oid[],
		       p.provariadic, p.proretset, p.prorettype, p.provolatile::text,
		       coalesce(p.proargmodes::text[] && '{o,b,t}', false)
		  FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.proname = ANY ($1) AND p.prokind IN ('f', 'a')
		 ORDER BY 2, 1`, slices.Sorted(maps.Keys(names.Funcs)))
	require.NoError(t, err)
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pgFunction])
	require.NoError(t, err)
	c.addFunctions(fns, names.Funcs)

	// Types: a domain for each name of a pg_catalog type the SQL uses
	// (float8 and int8 are found through the search_path; double precision
	// and bigint are keywords the grammar resolves to pg_catalog's).
	for _, id := range names.Idents {
		ty, ok := c.byTypName[id]
		if ok && !ty.Pseudo && ty.Category != "A" && !slices.Contains(keywordTypes, id) {
			c.add(plantSpec{Kind: "type", OID: ty.OID})
		}
	}
	return c.specs
}

func loadPlantCatalog(t *testing.T, ctx context.Context, conn *pgx.Conn) *plantCatalog {
	t.Helper()
	rows, err := conn.Query(ctx, `
		SELECT t.oid, t.typname::text, pg_catalog.format_type(t.oid, NULL), t.typcategory::text, t.typarray, t.typelem, t.typtype = 'p'
		  FROM pg_catalog.pg_type AS t
		 WHERE t.typnamespace = 'pg_catalog'::pg_catalog.regnamespace`)
	require.NoError(t, err)
	types, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pgType])
	require.NoError(t, err)
	c := &plantCatalog{
		types: map[uint32]pgType{}, byName: map[string]pgType{}, byTypName: map[string]pgType{},
		family: map[uint32][]uint32{}, elementish: map[uint32]bool{}, arrayish: map[uint32]bool{},
		implicit: map[[2]uint32]bool{}, seen: map[string]bool{},
	}
	for _, ty := range types {
		c.types[ty.OID], c.byName[ty.Name], c.byTypName[ty.TypName] = ty, ty, ty
	}
	lookup := func(name string) pgType {
		ty, ok := c.byName[name]
		require.True(t, ok, "type %s", name)
		return ty
	}
	for _, name := range trojanCommonTypes {
		c.common = append(c.common, lookup(name))
	}
	for _, f := range trojanFamilies {
		var oids []uint32
		for _, name := range f {
			oids = append(oids, lookup(name).OID)
		}
		for _, o := range oids {
			c.family[o] = oids
		}
	}
	for _, name := range []string{"anyelement", "anynonarray", "anycompatible", "anycompatiblenonarray", `"any"`} {
		c.elementish[lookup(name).OID] = true
	}
	for _, name := range []string{"anyarray", "anycompatiblearray"} {
		c.arrayish[lookup(name).OID] = true
	}
	rows, err = conn.Query(ctx, `SELECT castsource, casttarget FROM pg_catalog.pg_cast WHERE castcontext = 'i'`)
	require.NoError(t, err)
	for rows.Next() {
		var from, to uint32
		require.NoError(t, rows.Scan(&from, &to))
		c.implicit[[2]uint32{from, to}] = true
	}
	require.NoError(t, rows.Err())
	return c
}

func (c *plantCatalog) add(s plantSpec) {
	if !c.seen[s.key()] {
		c.seen[s.key()] = true
		c.specs = append(c.specs, s)
	}
}

// canApply reports whether a value of type from can be passed where a
// pg_catalog signature has to (roughly: the probe of es_trojan_plant
// decides).
func (c *plantCatalog) canApply(from, to uint32) bool {
	switch {
	case from == to || c.implicit[[2]uint32{from, to}]:
		return true
	case c.arrayish[to]:
		return c.types[from].Category == "A"
	case c.elementish[to]:
		return c.types[to].Name != "anynonarray" || c.types[from].Category != "A"
	}
	return false // other pseudo-types (anyrange, anyenum, internal, ...) take none of the common types
}

// addOperators plants a duplicate of each of pg_catalog's operators, then,
// for each, every pair (or, for a prefix operator, every one) of common
// types that pg_catalog has no exact operator for but can apply it to.
func (c *plantCatalog) addOperators(ops []pgOperator) {
	byName := map[string][]pgOperator{}
	for _, o := range ops {
		byName[o.Name] = append(byName[o.Name], o)
	}
	has := func(name string, l, r uint32) bool {
		return slices.ContainsFunc(byName[name], func(o pgOperator) bool { return o.Left == l && o.Right == r })
	}
	for _, o := range ops {
		c.add(plantSpec{Kind: "op", Name: o.Name, Left: o.Left, Right: o.Right, Ret: o.Result})
	}
	for _, o := range ops {
		for _, r := range c.common {
			if !c.canApply(r.OID, o.Right) {
				continue
			}
			if o.Kind == "l" {
				if !has(o.Name, 0, r.OID) {
					c.add(plantSpec{Kind: "op", Name: o.Name, Right: r.OID})
				}
				continue
			}
			for _, l := range c.common {
				if c.canApply(l.OID, o.Left) && !has(o.Name, l.OID, r.OID) {
					c.add(plantSpec{Kind: "op", Name: o.Name, Left: l.OID, Right: r.OID})
				}
			}
		}
	}
}

// addFunctions plants a duplicate of each of pg_catalog's overloads (and
// aggregates) of the names the SQL calls, then variants for the argument
// counts of its call sites (arities).
func (c *plantCatalog) addFunctions(fns []pgFunction, arities map[string][]int) {
	exact := map[string]bool{}
	volatility := map[string]string{}
	for _, f := range fns {
		exact[fmt.Sprint(f.Name, f.ArgTypes)] = true
		volatility[f.Name] = max(volatility[f.Name], f.Volatile) // i < s < v
		switch {
		case f.Kind == "a":
			c.add(plantSpec{Kind: "agg", Name: f.Name, OID: f.OID})
		case !f.HasOutArgs:
			c.add(plantSpec{Kind: "fn", Name: f.Name, OID: f.OID})
		}
	}
	for _, f := range fns {
		if f.Kind != "f" || f.HasOutArgs {
			continue
		}
		ns := arities[f.Name]
		if f.Name == "unnest" { // unnest(a, b) in FROM is unnest(a), unnest(b)
			ns = append(slices.Clone(ns), 1)
		}
		for _, n := range ns {
			declared := c.declared(f, n)
			if declared == nil {
				continue
			}
			for _, args := range c.variants(declared) {
				if exact[fmt.Sprint(f.Name, args)] {
					continue
				}
				s := plantSpec{Kind: "fn", Name: f.Name, Args: args, Vol: volatility[f.Name]}
				if f.RetSet {
					// The probe cannot see the type of a set: only a
					// polymorphic one, from the instantiation.
					if !c.elementish[f.RetType] {
						continue
					}
					if s.Ret, s.SetOf = c.elementOf(args, declared), true; s.Ret == 0 {
						continue
					}
				}
				c.add(s)
			}
		}
	}
}

// declared returns the types of f's first n arguments (a variadic one
// repeated), or nil when f takes no n arguments or one of a pseudo-type
// that no common type instantiates.
func (c *plantCatalog) declared(f pgFunction, n int) []uint32 {
	if n == 0 || n < f.NArgs-f.NDefaults || (n > f.NArgs && f.Variadic == 0) {
		return nil
	}
	declared := make([]uint32, n)
	for i := range n {
		if f.Variadic != 0 && i >= f.NArgs-1 {
			declared[i] = f.Variadic // "any", or the element type of VARIADIC x[]
		} else {
			declared[i] = f.ArgTypes[i]
		}
		if o := declared[i]; c.types[o].Pseudo && !c.elementish[o] && !c.arrayish[o] {
			return nil
		}
	}
	return declared
}

// variants returns argument lists for a call of declared's types: every
// combination of the families with the polymorphic arguments all of one
// common type when they are few, and each argument varied alone
// (polymorphic ones over the common types, the others over their family)
// from a base with text in place of the polymorphic arguments.
func (c *plantCatalog) variants(declared []uint32) [][]uint32 {
	const maxCombinations = 256
	var out [][]uint32
	poly := slices.ContainsFunc(declared, func(o uint32) bool { return c.elementish[o] || c.arrayish[o] })
	combos := [][]uint32{{}}
	for _, o := range declared {
		options := []uint32{o}
		if fam, ok := c.family[o]; ok {
			options = fam
		}
		var next [][]uint32
		for _, combo := range combos {
			for _, opt := range options {
				next = append(next, append(slices.Clone(combo), opt))
			}
		}
		combos = next
	}
	if len(combos)*max(1, len(c.common)*btoi(poly)) <= maxCombinations {
		for _, combo := range combos {
			if !poly {
				out = append(out, combo)
				continue
			}
			for _, elem := range c.common {
				if inst, ok := c.instantiate(combo, elem); ok {
					out = append(out, inst)
				}
			}
		}
	}
	base, _ := c.instantiate(declared, c.byName["text"])
	for i, o := range declared {
		var options []uint32
		for _, ct := range c.common {
			switch {
			case c.elementish[o]:
				options = append(options, ct.OID)
			case c.arrayish[o] && ct.Array != 0:
				options = append(options, ct.Array)
			}
		}
		if !c.elementish[o] && !c.arrayish[o] {
			options = c.family[o]
		}
		for _, opt := range options {
			v := slices.Clone(base)
			v[i] = opt
			out = append(out, v)
		}
	}
	return out
}

// instantiate replaces the polymorphic types of args by elem (and its
// array type); false when elem has no array type and one is needed.
func (c *plantCatalog) instantiate(args []uint32, elem pgType) ([]uint32, bool) {
	out := slices.Clone(args)
	for i, o := range args {
		switch {
		case c.elementish[o]:
			out[i] = elem.OID
		case c.arrayish[o]:
			if elem.Array == 0 {
				return nil, false
			}
			out[i] = elem.Array
		}
	}
	return out, true
}

// elementOf returns the type that the polymorphic arguments of declared
// stand for in args.
func (c *plantCatalog) elementOf(args, declared []uint32) uint32 {
	for i, o := range declared {
		switch {
		case c.elementish[o]:
			return args[i]
		case c.arrayish[o]:
			return c.types[args[i]].Elem
		}
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// trojanPlantSQL creates, in the session's pg_temp, the procedure
// es_trojan_plant(schema, tag, specs), which plants each spec in schema,
// in a transaction of its own (a long one would hold back read_all in
// every database of the cluster until it ends, and the other tests read
// the log meanwhile), and adds a row per spec to es_trojan_planted:
// whether it was planted, its description (what its notice names) and why
// not. Every plant is plpgsql: it raises NOTICE 'es-trojan: <description>
// as <current_user>' (once per value of the setting es_trojan.call, which the
// test sets before each call, so that a loop does not flood the client;
// a rolled back subtransaction undoes the setting, so the plant notices
// again), then does what pg_catalog's object does. (In a parallel worker
// the set_config would fail: the call then fails, which hides nothing.)
// Plants name everything in full, so that they never call each other.
const trojanPlantSQL = `
CREATE FUNCTION pg_temp.es_trojan_type(p_type oid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.format('%I.%I', n.nspname, t.typname)
      FROM pg_catalog.pg_type AS t JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
     WHERE t.oid OPERATOR(pg_catalog.=) p_type
$$;

CREATE FUNCTION pg_temp.es_trojan_mark(p_guc text, p_descr text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.format($m$
    IF coalesce(pg_catalog.current_setting(%1$L, true), '') OPERATOR(pg_catalog.<>)
       (coalesce(pg_catalog.current_setting('es_trojan.call', true), '') OPERATOR(pg_catalog.||) '#') THEN
        RAISE NOTICE 'es-trojan: %% as %%', %2$L, current_user;
        PERFORM pg_catalog.set_config(%1$L, coalesce(pg_catalog.current_setting('es_trojan.call', true), '') OPERATOR(pg_catalog.||) '#', false);
    END IF;
$m$, p_guc, p_descr)
$$;

CREATE TABLE pg_temp.es_trojan_planted (n int, planted boolean, descr text, why text);

CREATE PROCEDURE pg_temp.es_trojan_plant(p_schema text, p_tag text, p_specs jsonb)
LANGUAGE plpgsql AS $plant$
DECLARE
    v_specs jsonb[] := ARRAY(SELECT jsonb_array_elements(p_specs));
    v_spec  jsonb;
    v_n     int := 0;
    planted boolean;
    descr   text;
    why     text;
    v_fn    text;
    v_left  oid;
    v_right oid;
    v_ret   oid;
    v_args  oid[];
    v_list  text;
    v_call  text;
    v_body  text;
    v_vol   text;
    v_p     record;
BEGIN
    FOREACH v_spec IN ARRAY v_specs LOOP
        v_n := v_n + 1;
        v_fn := format('%I.es_trojan_%s%s', p_schema, p_tag, v_n);
        descr := NULL;
        BEGIN
            CASE v_spec->>'kind'
            WHEN 'op' THEN
                v_left := coalesce((v_spec->>'left')::oid, 0);
                v_right := (v_spec->>'right')::oid;
                v_ret := coalesce((v_spec->>'ret')::oid, 0);
                descr := format('%s.%s(%s%s)', p_schema, v_spec->>'name',
                                CASE WHEN v_left = 0 THEN 'NONE,' ELSE format_type(v_left, NULL) || ',' END,
                                format_type(v_right, NULL));
                v_call := format('%s OPERATOR(pg_catalog.%s) %s',
                                 CASE WHEN v_left = 0 THEN '' ELSE '$1' END, v_spec->>'name',
                                 CASE WHEN v_left = 0 THEN '$1' ELSE '$2' END);
                IF v_ret = 0 THEN
                    EXECUTE format('SELECT pg_catalog.pg_typeof((SELECT %s OPERATOR(pg_catalog.%s) NULL::%s WHERE false))',
                                   CASE WHEN v_left = 0 THEN '' ELSE 'NULL::' || pg_temp.es_trojan_type(v_left) END,
                                   v_spec->>'name', pg_temp.es_trojan_type(v_right)) INTO v_ret;
                END IF;
                EXECUTE format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS %L',
                               v_fn,
                               CASE WHEN v_left = 0 THEN '' ELSE pg_temp.es_trojan_type(v_left) || ', ' END
                                   || pg_temp.es_trojan_type(v_right),
                               pg_temp.es_trojan_type(v_ret),
                               'BEGIN ' || pg_temp.es_trojan_mark('es_trojan.seen_' || p_tag || v_n, descr)
                                   || ' RETURN ' || v_call || '; END');
                EXECUTE format('CREATE OPERATOR %I.%s (%sRIGHTARG = %s, FUNCTION = %s)', p_schema, v_spec->>'name',
                               CASE WHEN v_left = 0 THEN '' ELSE 'LEFTARG = ' || pg_temp.es_trojan_type(v_left) || ', ' END,
                               pg_temp.es_trojan_type(v_right), v_fn);
            WHEN 'fn' THEN
                IF v_spec ? 'oid' THEN -- a duplicate of a pg_catalog function
                    SELECT p.proname, p.pronargs, p.provariadic, p.proretset, p.prorettype, p.provolatile, p.proparallel,
                           pg_get_function_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result
                      INTO v_p FROM pg_proc AS p WHERE p.oid = (v_spec->>'oid')::oid;
                    descr := format('%s.%s(%s)', p_schema, v_p.proname,
                                    (SELECT coalesce(string_agg(format_type(a, NULL), ',' ORDER BY i), '')
                                       FROM unnest((SELECT p.proargtypes::oid[] FROM pg_proc AS p WHERE p.oid = (v_spec->>'oid')::oid))
                                            WITH ORDINALITY AS x(a, i)));
                    SELECT string_agg(CASE WHEN v_p.provariadic <> 0 AND i = v_p.pronargs THEN 'VARIADIC ' ELSE '' END || '$' || i, ', ' ORDER BY i)
                      INTO v_list FROM generate_series(1, v_p.pronargs) AS i;
                    v_call := format('pg_catalog.%I(%s)', v_p.proname, coalesce(v_list, ''));
                    v_body := CASE WHEN v_p.proretset THEN 'RETURN QUERY SELECT * FROM ' || v_call || ';'
                                   WHEN v_p.prorettype = 'pg_catalog.void'::pg_catalog.regtype THEN 'PERFORM ' || v_call || '; RETURN;'
                                   ELSE 'RETURN ' || v_call || ';' END;
                    EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql %s %s AS %L',
                                   p_schema, v_p.proname, v_p.args, v_p.result,
                                   CASE v_p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
                                   CASE v_p.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED' ELSE 'PARALLEL UNSAFE' END,
                                   'BEGIN ' || pg_temp.es_trojan_mark('es_trojan.seen_' || p_tag || v_n, descr) || ' ' || v_body || ' END');
                ELSE -- a variant: argument types pg_catalog has no overload for
                    SELECT array_agg(a::oid ORDER BY i) INTO v_args FROM jsonb_array_elements_text(v_spec->'args') WITH ORDINALITY AS x(a, i);
                    descr := format('%s.%s(%s)', p_schema, v_spec->>'name',
                                    (SELECT string_agg(format_type(a, NULL), ',' ORDER BY i) FROM unnest(v_args) WITH ORDINALITY AS x(a, i)));
                    SELECT string_agg('$' || i, ', ' ORDER BY i), string_agg('NULL::' || pg_temp.es_trojan_type(a), ', ' ORDER BY i)
                      INTO v_list, v_call FROM unnest(v_args) WITH ORDINALITY AS x(a, i);
                    v_ret := coalesce((v_spec->>'ret')::oid, 0);
                    IF v_ret = 0 THEN
                        EXECUTE format('SELECT pg_catalog.pg_typeof((SELECT pg_catalog.%I(%s) WHERE false))', v_spec->>'name', v_call) INTO v_ret;
                    END IF;
                    v_call := format('pg_catalog.%I(%s)', v_spec->>'name', v_list);
                    v_body := CASE WHEN (v_spec->>'setof')::boolean THEN 'RETURN QUERY SELECT * FROM ' || v_call || ';'
                                   WHEN v_ret = 'pg_catalog.void'::pg_catalog.regtype THEN 'PERFORM ' || v_call || '; RETURN;'
                                   ELSE 'RETURN ' || v_call || ';' END;
                    v_vol := CASE v_spec->>'vol' WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END;
                    EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s%s LANGUAGE plpgsql %s AS %L',
                                   p_schema, v_spec->>'name',
                                   (SELECT string_agg(pg_temp.es_trojan_type(a), ', ' ORDER BY i) FROM unnest(v_args) WITH ORDINALITY AS x(a, i)),
                                   CASE WHEN (v_spec->>'setof')::boolean THEN 'SETOF ' ELSE '' END, pg_temp.es_trojan_type(v_ret), v_vol,
                                   'BEGIN ' || pg_temp.es_trojan_mark('es_trojan.seen_' || p_tag || v_n, descr) || ' ' || v_body || ' END');
                END IF;
            WHEN 'agg' THEN -- a duplicate of a pg_catalog aggregate, with a planted transition function
                SELECT p.proname, p.pronargs, p.proargtypes, a.aggtransfn, a.aggtranstype, a.agginitval, a.aggfinalfn, a.aggkind,
                       tf.proisstrict, tf.proname AS transfn, pg_get_function_identity_arguments(p.oid) AS args
                  INTO v_p
                  FROM pg_proc AS p JOIN pg_aggregate AS a ON a.aggfnoid = p.oid JOIN pg_proc AS tf ON tf.oid = a.aggtransfn
                 WHERE p.oid = (v_spec->>'oid')::oid;
                descr := format('aggregate %s.%s(%s)', p_schema, v_p.proname, CASE WHEN v_p.pronargs = 0 THEN '*' ELSE v_p.args END);
                IF v_p.aggfinalfn <> 0 OR v_p.aggkind <> 'n' THEN
                    RAISE EXCEPTION 'not a plain aggregate';
                END IF;
                SELECT string_agg('$' || i, ', ' ORDER BY i) INTO v_list FROM generate_series(1, v_p.pronargs + 1) AS i;
                EXECUTE format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql IMMUTABLE %s PARALLEL SAFE AS %L',
                               v_fn,
                               (SELECT string_agg(pg_temp.es_trojan_type(a), ', ' ORDER BY i)
                                  FROM unnest(ARRAY[v_p.aggtranstype] || v_p.proargtypes::oid[]) WITH ORDINALITY AS x(a, i)),
                               pg_temp.es_trojan_type(v_p.aggtranstype),
                               CASE WHEN v_p.proisstrict THEN 'STRICT' ELSE '' END,
                               'BEGIN ' || pg_temp.es_trojan_mark('es_trojan.seen_' || p_tag || v_n, descr)
                                   || format(' RETURN pg_catalog.%I(%s); END', v_p.transfn, v_list));
                EXECUTE format('CREATE AGGREGATE %I.%I(%s) (SFUNC = %s, STYPE = %s%s)', p_schema, v_p.proname,
                               CASE WHEN v_p.pronargs = 0 THEN '*'
                                    ELSE (SELECT string_agg(pg_temp.es_trojan_type(a), ', ' ORDER BY i)
                                            FROM unnest(v_p.proargtypes::oid[]) WITH ORDINALITY AS x(a, i)) END,
                               v_fn, pg_temp.es_trojan_type(v_p.aggtranstype),
                               CASE WHEN v_p.agginitval IS NULL THEN '' ELSE format(', INITCOND = %L', v_p.agginitval) END);
            WHEN 'type' THEN -- a domain over the pg_catalog type, checked by a plant
                SELECT t.typname INTO v_p FROM pg_type AS t WHERE t.oid = (v_spec->>'oid')::oid;
                descr := format('type %s.%s', p_schema, v_p.typname);
                EXECUTE format('CREATE FUNCTION %s(%s) RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS %L',
                               v_fn, pg_temp.es_trojan_type((v_spec->>'oid')::oid),
                               'BEGIN ' || pg_temp.es_trojan_mark('es_trojan.seen_' || p_tag || v_n, descr) || ' RETURN true; END');
                EXECUTE format('CREATE DOMAIN %I.%I AS %s CHECK (%s(VALUE))', p_schema, v_p.typname,
                               pg_temp.es_trojan_type((v_spec->>'oid')::oid), v_fn);
            END CASE;
            planted := true;
            why := NULL;
        EXCEPTION WHEN OTHERS THEN
            planted := false;
            why := SQLERRM;
        END;
        INSERT INTO pg_temp.es_trojan_planted VALUES (v_n, planted, descr, why);
        COMMIT;
    END LOOP;
END
$plant$;
`

// plantResult is one row of es_trojan_planted.
type plantResult struct {
	Planted bool
	Descr   *string
	Why     *string
}

// plantAll installs the helper in conn's session and plants specs in
// schema (public or pg_temp), types last. It returns what was planted.
func plantAll(t *testing.T, ctx context.Context, conn *pgx.Conn, schema, tag string, specs []plantSpec) []string {
	t.Helper()
	start := time.Now()
	// A commit per object: on a server that flushes, not waiting for each
	// flush keeps this fast.
	_, err := conn.Exec(ctx, "SET search_path = pg_catalog, pg_temp; SET synchronous_commit = off")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, trojanPlantSQL)
	require.NoError(t, err)
	ordered := slices.Clone(specs)
	slices.SortStableFunc(ordered, func(a, b plantSpec) int { return btoi(a.Kind == "type") - btoi(b.Kind == "type") })
	_, err = conn.Exec(ctx, "CALL pg_temp.es_trojan_plant($1, $2, $3)", schema, tag, ordered)
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "SELECT planted, descr, why FROM pg_temp.es_trojan_planted ORDER BY n")
	require.NoError(t, err)
	results, err := pgx.CollectRows(rows, pgx.RowToStructByPos[plantResult])
	require.NoError(t, err)
	var planted []string
	unresolved, other := 0, map[string]int{}
	for _, r := range results {
		switch why := ptrText(r.Why); {
		case r.Planted:
			planted = append(planted, *r.Descr)
		case strings.Contains(why, "does not exist") || strings.Contains(why, "is not unique"):
			unresolved++ // pg_catalog has no operator or function for these arguments
		default:
			other[ptrText(r.Descr)+": "+why]++
		}
	}
	t.Logf("planted %d objects in %s in %v; %d candidates pg_catalog has nothing for; not planted otherwise: %v",
		len(planted), schema, time.Since(start).Round(time.Millisecond), unresolved, other)
	return planted
}

func ptrText(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// trojanNotices collects the notices of plants on a connection (set as
// its OnNotice), each with the call that was running.
type trojanNotices struct {
	mu    sync.Mutex
	call  string
	fired []trojanFiring
}

// trojanFiring is a plant that ran: its description, the user it ran as
// and the call that made it run.
type trojanFiring struct {
	Plant, User, Call string
}

func (n *trojanNotices) onNotice(_ *pgconn.PgConn, notice *pgconn.Notice) {
	rest, ok := strings.CutPrefix(notice.Message, "es-trojan: ")
	if !ok {
		return
	}
	i := strings.LastIndex(rest, " as ")
	if i < 0 {
		return
	}
	plant, user := rest[:i], rest[i+len(" as "):]
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fired = append(n.fired, trojanFiring{Plant: plant, User: user, Call: n.call})
}

func (n *trojanNotices) setCall(call string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.call = call
}

// take returns the firings since the last take.
func (n *trojanNotices) take() []trojanFiring {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fired
	n.fired = nil
	return f
}
