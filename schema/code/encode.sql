{{- $s := .schema | default "es" -}}
-- es: jsonb → msgpack, to write events from SQL in JSON (append_json).
--
-- SQLSTATE raised:
--   PE003  a value msgpack_to_jsonb could not give back exactly: a number
--          that is neither an integer of 64 bits (signed or unsigned) nor
--          a float8 whose shortest text is the number itself, or nesting
--          deeper than 512.
--
-- Like the decoder (decode.sql), every function pins search_path and names
-- pg_catalog's functions in full, so that nothing another login planted
-- runs when someone encodes.

-- jsonb_to_msgpack encodes a jsonb value as msgpack, the exact inverse of
-- msgpack_to_jsonb on JSON: msgpack_to_jsonb(jsonb_to_msgpack(v)) = v for
-- every v it accepts.
--   null → nil; true/false → bool; a number without a fractional part in
--   the range of int64 → int (the smallest form), up to 2^64 - 1 → uint64;
--   any other number → float64, when its shortest float8 text reads back as
--   the same number (0.1, 1.5e300), else PE003 (0.1000000000000000000001);
--   a string → str (UTF-8); an array → array; an object → map with string
--   keys, in jsonb's key order.
-- The es Go codec decodes the result into the event's struct: strings,
-- numbers, booleans, slices and maps as written, UUIDs from their string
-- form, times from an RFC 3339 string (what msgpack_to_jsonb shows).
--
-- Cost: linear in the input. It walks the value once with an explicit
-- stack (no recursion, no copy of the output so far): each value appends
-- its pieces to one array, concatenated once at the end.
CREATE OR REPLACE FUNCTION {{ $s }}.jsonb_to_msgpack(p_value jsonb) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- The open containers, innermost last: each one's value, its number of
    -- items, the index of the next, and (objects) where its keys start in
    -- keys. Arrays are appended to and read in place (constant time);
    -- nothing is ever removed from keys.
    st_value jsonb[] := '{}';
    st_len   int[]   := '{}';
    st_next  int[]   := '{}';
    st_key   int[]   := '{}';
    keys     text[]  := '{}';
    depth    int     := 0;
    out      bytea[] := '{}';
    v        jsonb   := p_value;
    t        text;
    b        bytea;
    n        int;
    k        text;
BEGIN
    LOOP
        -- Write v.
        t := pg_catalog.jsonb_typeof(v);
        IF t = 'string' THEN
            b := pg_catalog.convert_to(v OPERATOR(pg_catalog.#>>) '{}'::text[], 'UTF8');
            out := pg_catalog.array_append(out, {{ $s }}.msgpack_str_header(pg_catalog.octet_length(b)) OPERATOR(pg_catalog.||) b);
        ELSIF t = 'number' THEN
            out := pg_catalog.array_append(out, {{ $s }}.msgpack_number(v::numeric));
        ELSIF t = 'boolean' THEN
            out := pg_catalog.array_append(out, CASE WHEN v::boolean THEN '\xc3'::bytea ELSE '\xc2'::bytea END);
        ELSIF t = 'null' THEN
            out := pg_catalog.array_append(out, '\xc0'::bytea);
        ELSE
            IF depth >= 512 THEN
                RAISE EXCEPTION 'jsonb_to_msgpack: nesting deeper than 512'
                    USING ERRCODE = 'PE003', DETAIL = '{"argument": "value"}';
            END IF;
            depth := depth + 1;
            st_value[depth] := v;
            st_next[depth] := 0;
            IF t = 'array' THEN
                n := pg_catalog.jsonb_array_length(v);
                st_key[depth] := 0;
                out := pg_catalog.array_append(out, CASE
                    WHEN n < 16 THEN pg_catalog.set_byte('\x90'::bytea, 0, 144 + n)
                    WHEN n < 65536 THEN '\xdc'::bytea OPERATOR(pg_catalog.||) pg_catalog.substring(pg_catalog.int4send(n), 3, 2)
                    ELSE '\xdd'::bytea OPERATOR(pg_catalog.||) pg_catalog.int4send(n) END);
            ELSE
                st_key[depth] := pg_catalog.cardinality(keys) + 1;
                n := 0;
                FOR k IN SELECT pg_catalog.jsonb_object_keys(v) LOOP
                    keys := pg_catalog.array_append(keys, k);
                    n := n + 1;
                END LOOP;
                out := pg_catalog.array_append(out, CASE
                    WHEN n < 16 THEN pg_catalog.set_byte('\x80'::bytea, 0, 128 + n)
                    WHEN n < 65536 THEN '\xde'::bytea OPERATOR(pg_catalog.||) pg_catalog.substring(pg_catalog.int4send(n), 3, 2)
                    ELSE '\xdf'::bytea OPERATOR(pg_catalog.||) pg_catalog.int4send(n) END);
            END IF;
            st_len[depth] := n;
        END IF;

        -- The next value: the next item of the innermost container that
        -- has one left, closing the others.
        WHILE depth > 0 AND st_next[depth] >= st_len[depth] LOOP
            depth := depth - 1;
        END LOOP;
        EXIT WHEN depth = 0;
        IF st_key[depth] > 0 THEN
            k := keys[st_key[depth] + st_next[depth]];
            b := pg_catalog.convert_to(k, 'UTF8');
            out := pg_catalog.array_append(out, {{ $s }}.msgpack_str_header(pg_catalog.octet_length(b)) OPERATOR(pg_catalog.||) b);
            v := st_value[depth] OPERATOR(pg_catalog.->) k;
        ELSE
            v := st_value[depth] OPERATOR(pg_catalog.->) st_next[depth];
        END IF;
        st_next[depth] := st_next[depth] + 1;
    END LOOP;
    RETURN (SELECT pg_catalog.string_agg(p, ''::bytea ORDER BY o) FROM pg_catalog.unnest(out) WITH ORDINALITY AS u(p, o));
END
$$;

-- msgpack_str_header is the header of a msgpack str of p_length bytes.
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_str_header(p_length int) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN p_length < 32 THEN pg_catalog.set_byte('\xa0'::bytea, 0, 160 + p_length)
        WHEN p_length < 256 THEN pg_catalog.set_byte('\xd900'::bytea, 1, p_length)
        WHEN p_length < 65536 THEN '\xda'::bytea || pg_catalog.substring(pg_catalog.int4send(p_length), 3, 2)
        ELSE '\xdb'::bytea || pg_catalog.int4send(p_length) END
$$;

-- msgpack_number encodes a JSON number (see jsonb_to_msgpack).
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_number(p_value numeric) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1 AS $$
DECLARE
    v_float float8;
BEGIN
    IF p_value = pg_catalog.trunc(p_value) AND pg_catalog.scale(p_value) = 0 THEN
        IF p_value >= 0 AND p_value < 128 THEN
            RETURN pg_catalog.set_byte('\x00'::bytea, 0, p_value::int);
        ELSIF p_value < 0 AND p_value >= -32 THEN
            RETURN pg_catalog.set_byte('\x00'::bytea, 0, (256 + p_value)::int);
        ELSIF p_value >= -9223372036854775808 AND p_value <= 9223372036854775807 THEN
            RETURN '\xd3'::bytea || pg_catalog.int8send(p_value::bigint);
        ELSIF p_value > 0 AND p_value <= 18446744073709551615 THEN
            -- uint64: the same 8 bytes as the bigint 2^64 below it.
            RETURN '\xcf'::bytea || pg_catalog.int8send((p_value - 18446744073709551616)::bigint);
        END IF;
    END IF;
    BEGIN
        v_float := p_value::float8;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        v_float := NULL;
    END;
    IF v_float IS NULL OR v_float::text::numeric <> p_value THEN
        RAISE EXCEPTION 'jsonb_to_msgpack: the number % is neither a 64-bit integer nor exactly a float8', p_value
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "value"}',
                  HINT = 'round it to 17 significant digits, or write it as a string';
    END IF;
    RETURN '\xcb'::bytea || pg_catalog.float8send(v_float);
END
$$;

-- append_json appends one event whose data (and metadata) are JSON: the
-- form for SQL users, append_event with the JSON encoded as msgpack. The data is encoded
-- with jsonb_to_msgpack, which the Go codec decodes into the event's
-- struct; the metadata is the object es.Metadata reads
-- ({"correlation_id", "causation_id", "headers"}).
--   SELECT * FROM es.append_json('order-1', 'OrderPlaced', '{"OrderID": "o-1", "Total": 12.5}');
CREATE OR REPLACE FUNCTION {{ $s }}.append_json(
    p_stream_id        text,
    p_event_type       text,
    p_data             jsonb,
    p_metadata         jsonb  DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_event_id         uuid   DEFAULT gen_random_uuid(),
    p_schema_version   int    DEFAULT 1
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint,
    first_transaction_id xid8
)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM {{ $s }}.append_event(p_stream_id, p_event_type, {{ $s }}.jsonb_to_msgpack(p_data),
                                        {{ $s }}.jsonb_to_msgpack(p_metadata), p_expected_version, p_event_id,
                                        p_schema_version)
$$;
