{{- $s := .schema | default "es" -}}
-- es: msgpack → jsonb for querying events in SQL. sql/decode.sql holds the same definitions for schema es.
--
-- SQLSTATE raised:
--   PE006  malformed msgpack (truncated, bad length, reserved byte 0xc1,
--          trailing bytes, nesting deeper than 512, invalid UTF-8 or NUL in
--          a string, bad timestamp); the message names the byte position.
--
-- msgpack_float_text is the shortest text that reads back as the same
-- float8 (or float4 when p_single), whatever the session's
-- extra_float_digits: msgpack_to_jsonb calls it only when that setting is
-- below 1 (the default is 1), so that it does not pay for a SET per call.
CREATE FUNCTION {{ $s }}.msgpack_float_text(p_value float8, p_single boolean) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET extra_float_digits = 1
AS $$
    SELECT CASE WHEN p_single THEN p_value::float4::text ELSE p_value::text END
$$;

-- msgpack_to_jsonb decodes one msgpack value (the whole input) into jsonb:
--   nil → null; bool; every int width → JSON number (uint64 beyond bigint
--   too); float32/float64 → the shortest decimal that reads back as the same
--   float (NaN, Infinity, -Infinity → JSON strings; -0 → 0, jsonb has no
--   negative zero); str → string (UTF-8; a NUL character is an error, since
--   PostgreSQL text cannot hold it); bin → base64 string; array → array;
--   map → object (a key that is not a string becomes the string of its jsonb
--   text: 1 → "1", true → "true", nil → "null", [1,2] → "[1, 2]"; of
--   duplicate keys the last wins); timestamp extension (-1, 4, 8 or 12
--   bytes) → RFC 3339 string in UTC, fractional seconds only when non-zero,
--   trailing zeros dropped (as Go's time.RFC3339Nano); any other extension →
--   {"ext": type, "data": base64}.
-- The es Go codec writes UUIDs as their canonical strings and times as
-- timestamp extensions, so both come out readable.
-- It walks the input once with an explicit stack (no recursion), collects
-- the JSON text as an array of pieces and parses it once at the end.
CREATE FUNCTION {{ $s }}.msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    b      bytea := p_data || '\x'::bytea;  -- a plain (detoasted) copy: get_byte stays O(1)
    blen   int := length(p_data);
    pos    int := 0;          -- offset of the next byte (0-based)
    start  int;               -- offset of the current value's first byte
    c      int;               -- current type byte
    k      bigint;            -- length or element count
    x      bigint;
    e      int;
    f      float8;
    secs   bigint;
    nanos  bigint;
    z      bigint;
    era    bigint;
    doe    bigint;
    yoe    bigint;
    doy    bigint;
    mp     bigint;
    yr     bigint;
    t      text;
    sub    bytea;
    kind   int;               -- 0 scalar in t, 1 str, 2 bin, 3 array, 4 map, 5 ext
    sep    text;
    keypos boolean;
    j      int;
    out    text[] := '{}';    -- pieces of JSON text
    n      int := 0;
    tmp    text[];
    -- The open container: the root is a one-item array of depth 0; the
    -- enclosing containers wait on the stack (s_*[d] is the one at depth d).
    depth  int := 0;
    c_map  boolean := false;
    c_cnt  bigint := 1;       -- items in the container (a map has 2 per entry)
    c_idx  bigint := 0;       -- items done
    c_key  int := 0;          -- > 0: the container is a map key starting at out[c_key]
    s_map  boolean[] := '{}';
    s_cnt  bigint[] := '{}';
    s_idx  bigint[] := '{}';
    s_key  int[] := '{}';
BEGIN
    LOOP
        -- Where the next value goes: separator and whether it is a map key.
        keypos := c_map AND c_idx % 2 = 0;
        sep := CASE WHEN c_idx = 0 THEN '' WHEN c_map AND NOT keypos THEN ':' ELSE ',' END;

        IF pos >= blen THEN
            RAISE EXCEPTION 'msgpack_to_jsonb: unexpected end of input at byte %: expected a value', pos
                USING ERRCODE = 'PE006';
        END IF;
        start := pos;
        c := get_byte(b, pos);
        pos := pos + 1;
        kind := 0;

        IF c < 128 THEN                                   -- positive fixint
            t := c::text;
        ELSIF c >= 160 AND c < 192 THEN                   -- fixstr
            kind := 1; k := c - 160;
        ELSIF c < 144 THEN                                -- fixmap
            kind := 4; k := c - 128;
        ELSIF c < 160 THEN                                -- fixarray
            kind := 3; k := c - 144;
        ELSIF c >= 224 THEN                               -- negative fixint
            t := (c - 256)::text;
        ELSIF c = 192 THEN
            t := 'null';
        ELSIF c = 194 THEN
            t := 'false';
        ELSIF c = 195 THEN
            t := 'true';
        ELSIF c = 193 THEN
            RAISE EXCEPTION 'msgpack_to_jsonb: reserved type byte 0xc1 at byte %', start
                USING ERRCODE = 'PE006';
        ELSE
            -- Every remaining type has a fixed-size part of e bytes after the type byte.
            e := CASE
                WHEN c IN (196, 199, 204, 208, 217) THEN 1   -- bin8, ext8, uint8, int8, str8
                WHEN c IN (197, 200, 205, 209, 218, 220, 222) THEN 2
                WHEN c IN (198, 201, 202, 206, 210, 219, 221, 223) THEN 4
                WHEN c IN (203, 207, 211) THEN 8
                WHEN c = 212 THEN 2 WHEN c = 213 THEN 3 WHEN c = 214 THEN 5
                WHEN c = 215 THEN 9 WHEN c = 216 THEN 17
            END;
            IF c >= 199 AND c <= 201 THEN
                e := e + 1;                               -- ext8/16/32: length, then the type
            END IF;
            IF pos + e > blen THEN
                RAISE EXCEPTION 'msgpack_to_jsonb: unexpected end of input at byte %: type 0x% needs % more bytes, % left',
                    blen, to_hex(c), e, blen - pos USING ERRCODE = 'PE006';
            END IF;
            -- x: the big-endian unsigned value of the first 1, 2 or 4 bytes,
            -- or of all 8 as a signed bigint.
            IF c IN (203, 207, 211) THEN
                x := ('x' || encode(substring(b FROM pos + 1 FOR 8), 'hex'))::bit(64)::bigint;
            ELSIF c IN (196, 199, 204, 208, 217) THEN
                x := get_byte(b, pos);
            ELSIF c IN (197, 200, 205, 209, 218, 220, 222) THEN
                x := get_byte(b, pos) * 256 + get_byte(b, pos + 1);
            ELSIF c IN (198, 201, 202, 206, 210, 219, 221, 223) THEN
                x := get_byte(b, pos)::bigint * 16777216 + get_byte(b, pos + 1) * 65536
                     + get_byte(b, pos + 2) * 256 + get_byte(b, pos + 3);
            END IF;

            IF c >= 217 AND c <= 219 THEN                 -- str8/16/32
                kind := 1; k := x; pos := pos + e;
            ELSIF c >= 220 AND c <= 221 THEN              -- array16/32
                kind := 3; k := x; pos := pos + e;
            ELSIF c >= 222 AND c <= 223 THEN              -- map16/32
                kind := 4; k := x; pos := pos + e;
            ELSIF c >= 204 AND c <= 207 THEN              -- uint8/16/32/64
                t := CASE WHEN x < 0 THEN (x::numeric + 18446744073709551616)::text ELSE x::text END;
                pos := pos + e;
            ELSIF c >= 208 AND c <= 211 THEN              -- int8/16/32/64
                t := CASE c WHEN 208 THEN CASE WHEN x >= 128 THEN x - 256 ELSE x END
                            WHEN 209 THEN CASE WHEN x >= 32768 THEN x - 65536 ELSE x END
                            WHEN 210 THEN CASE WHEN x >= 2147483648 THEN x - 4294967296 ELSE x END
                            ELSE x END::text;
                pos := pos + e;
            ELSIF c = 203 THEN                            -- float64
                pos := pos + e;
                e := ((x >> 52) & 2047)::int;
                k := x & 4503599627370495;
                IF e = 2047 THEN
                    t := CASE WHEN k <> 0 THEN '"NaN"' WHEN x < 0 THEN '"-Infinity"' ELSE '"Infinity"' END;
                ELSE
                    IF e = 0 THEN
                        f := k::float8 * power(2::float8, -1074);
                    ELSE
                        f := (k + 4503599627370496)::float8 * power(2::float8, e - 1075);
                    END IF;
                    f := CASE WHEN x < 0 THEN -f ELSE f END;
                    t := CASE WHEN current_setting('extra_float_digits')::int >= 1 THEN f::text
                              ELSE {{ $s }}.msgpack_float_text(f, false) END;
                END IF;
            ELSIF c = 202 THEN                            -- float32
                pos := pos + e;
                e := ((x >> 23) & 255)::int;
                k := x & 8388607;
                IF e = 255 THEN
                    t := CASE WHEN k <> 0 THEN '"NaN"' WHEN x >= 2147483648 THEN '"-Infinity"' ELSE '"Infinity"' END;
                ELSE
                    IF e = 0 THEN
                        f := k::float8 * power(2::float8, -149);
                    ELSE
                        f := (k + 8388608)::float8 * power(2::float8, e - 150);
                    END IF;
                    f := CASE WHEN x >= 2147483648 THEN -f ELSE f END;
                    t := CASE WHEN current_setting('extra_float_digits')::int >= 1 THEN f::float4::text
                              ELSE {{ $s }}.msgpack_float_text(f, true) END;
                END IF;
            ELSIF c >= 196 AND c <= 198 THEN              -- bin8/16/32
                kind := 2; k := x; pos := pos + e;
            ELSIF c >= 199 AND c <= 201 THEN              -- ext8/16/32: length, type
                kind := 5; k := x; pos := pos + e;
                x := get_byte(b, pos - 1);
            ELSE                                          -- fixext1/2/4/8/16: type
                kind := 5; k := e - 1; pos := pos + 1;
                x := get_byte(b, pos - 1);
            END IF;
        END IF;

        IF kind = 1 OR kind = 2 OR kind = 5 THEN
            IF k > blen - pos THEN
                RAISE EXCEPTION 'msgpack_to_jsonb: % at byte % declares % bytes, only % left',
                    CASE kind WHEN 1 THEN 'string' WHEN 2 THEN 'binary' ELSE 'extension' END,
                    start, k, blen - pos USING ERRCODE = 'PE006';
            END IF;
            IF kind = 1 THEN
                -- Validated without raising (an EXCEPTION block would make the
                -- function parallel unsafe): read as LATIN1 (one character per
                -- byte), which only fails on NUL, checked first; ASCII is done;
                -- anything else must match the UTF-8 grammar before convert_from.
                sub := substring(b FROM pos + 1 FOR k::int);
                IF position('\x00'::bytea IN sub) > 0 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % contains NUL, which PostgreSQL text cannot hold', start
                        USING ERRCODE = 'PE006';
                END IF;
                t := convert_from(sub, 'LATIN1');
                IF t !~ '^[\x01-\x7f]*$' THEN
                    IF t !~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % is not valid UTF-8', start
                            USING ERRCODE = 'PE006';
                    END IF;
                    t := convert_from(sub, 'UTF8');
                END IF;
                t := to_json(t)::text;
            ELSIF kind = 2 THEN
                t := '"' || translate(encode(substring(b FROM pos + 1 FOR k::int), 'base64'), E'\n', '') || '"';
            ELSIF x = 255 THEN                            -- timestamp extension (-1)
                IF k = 4 THEN
                    nanos := 0;
                    secs := get_byte(b, pos)::bigint * 16777216 + get_byte(b, pos + 1) * 65536
                            + get_byte(b, pos + 2) * 256 + get_byte(b, pos + 3);
                ELSIF k = 8 THEN
                    x := ('x' || encode(substring(b FROM pos + 1 FOR 8), 'hex'))::bit(64)::bigint;
                    nanos := (x >> 34) & 1073741823;
                    secs := x & 17179869183;
                ELSIF k = 12 THEN
                    nanos := get_byte(b, pos)::bigint * 16777216 + get_byte(b, pos + 1) * 65536
                             + get_byte(b, pos + 2) * 256 + get_byte(b, pos + 3);
                    secs := ('x' || encode(substring(b FROM pos + 5 FOR 8), 'hex'))::bit(64)::bigint;
                ELSE
                    RAISE EXCEPTION 'msgpack_to_jsonb: timestamp extension at byte % has % data bytes, want 4, 8 or 12',
                        start, k USING ERRCODE = 'PE006';
                END IF;
                IF nanos > 999999999 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: timestamp at byte % has % nanoseconds, want at most 999999999',
                        start, nanos USING ERRCODE = 'PE006';
                END IF;
                -- Civil date from days since 1970-01-01 (H. Hinnant's algorithm),
                -- exact over the whole int64 range of seconds.
                z := div(secs, 86400) - CASE WHEN secs % 86400 < 0 THEN 1 ELSE 0 END;
                secs := secs - z * 86400;                 -- seconds of the day, 0..86399
                z := z + 719468;
                era := div(z - CASE WHEN z < 0 THEN 146096 ELSE 0 END, 146097);
                doe := z - era * 146097;
                yoe := (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
                doy := doe - (365 * yoe + yoe / 4 - yoe / 100);
                mp := (5 * doy + 2) / 153;
                yr := yoe + era * 400 + CASE WHEN mp >= 10 THEN 1 ELSE 0 END;
                t := '"' || CASE WHEN yr < 0 THEN '-' ELSE '' END
                     || CASE WHEN abs(yr) < 10000 THEN lpad(abs(yr)::text, 4, '0') ELSE abs(yr)::text END
                     || '-' || lpad((CASE WHEN mp < 10 THEN mp + 3 ELSE mp - 9 END)::text, 2, '0')
                     || '-' || lpad((doy - (153 * mp + 2) / 5 + 1)::text, 2, '0')
                     || 'T' || lpad((secs / 3600)::text, 2, '0')
                     || ':' || lpad((secs / 60 % 60)::text, 2, '0')
                     || ':' || lpad((secs % 60)::text, 2, '0')
                     || CASE WHEN nanos = 0 THEN '' ELSE '.' || rtrim(lpad(nanos::text, 9, '0'), '0') END
                     || 'Z"';
            ELSE                                          -- any other extension
                t := '{"ext": ' || CASE WHEN x >= 128 THEN x - 256 ELSE x END
                     || ', "data": "' || translate(encode(substring(b FROM pos + 1 FOR k::int), 'base64'), E'\n', '') || '"}';
            END IF;
            pos := pos + k::int;
        ELSIF kind >= 3 THEN                              -- array or map
            IF k = 0 THEN
                t := CASE WHEN kind = 3 THEN '[]' ELSE '{}' END;
            ELSE
                IF kind = 4 THEN
                    k := k * 2;
                END IF;
                IF k > blen - pos THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: % at byte % declares % items, only % bytes left',
                        CASE WHEN kind = 3 THEN 'array' ELSE 'map' END, start, k, blen - pos
                        USING ERRCODE = 'PE006';
                END IF;
                IF depth >= 512 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: nesting deeper than 512 at byte %', start
                        USING ERRCODE = 'PE006';
                END IF;
                IF keypos AND sep <> '' THEN
                    n := n + 1; out[n] := sep; sep := '';
                END IF;
                n := n + 1;
                out[n] := sep || CASE WHEN kind = 3 THEN '[' ELSE '{' END;
                s_map[depth] := c_map;
                s_cnt[depth] := c_cnt;
                s_idx[depth] := c_idx;
                s_key[depth] := c_key;
                depth := depth + 1;
                c_map := kind = 4;
                c_cnt := k;
                c_idx := 0;
                c_key := CASE WHEN keypos THEN n ELSE 0 END;
                CONTINUE;
            END IF;
        END IF;

        -- A complete value: append it, then close every container it completes.
        n := n + 1;
        IF keypos THEN                                    -- a map key: never completes the map
            out[n] := sep || CASE WHEN left(t, 1) = '"' THEN t ELSE to_json(t::jsonb::text)::text END;
            c_idx := c_idx + 1;
            CONTINUE;
        END IF;
        out[n] := sep || t;
        LOOP
            c_idx := c_idx + 1;
            EXIT WHEN c_idx < c_cnt OR depth = 0;
            n := n + 1;
            out[n] := CASE WHEN c_map THEN '}' ELSE ']' END;
            IF c_key > 0 THEN                             -- a map key: its JSON text as a string
                tmp := '{}';
                FOR j IN c_key .. n LOOP
                    tmp[j - c_key + 1] := out[j];
                END LOOP;
                n := c_key;
                out[n] := to_json(array_to_string(tmp, '')::jsonb::text)::text;
            END IF;
            depth := depth - 1;
            c_map := s_map[depth];
            c_cnt := s_cnt[depth];
            c_idx := s_idx[depth];
            c_key := s_key[depth];
        END LOOP;
        EXIT WHEN depth = 0 AND c_idx = c_cnt;
    END LOOP;

    IF pos < blen THEN
        RAISE EXCEPTION 'msgpack_to_jsonb: % trailing bytes after the value at byte %', blen - pos, pos
            USING ERRCODE = 'PE006';
    END IF;
    IF cardinality(out) > n THEN
        out := out[1:n];
    END IF;
    RETURN array_to_string(out, '')::jsonb;
END
$$;

-- try_msgpack_to_jsonb is msgpack_to_jsonb returning NULL where that raises
-- PE006 (malformed msgpack). It is PARALLEL RESTRICTED, not SAFE: its
-- EXCEPTION block starts a subtransaction, which parallel workers cannot.
CREATE FUNCTION {{ $s }}.try_msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED AS $$
BEGIN
    RETURN {{ $s }}.msgpack_to_jsonb(p_data);
EXCEPTION
    WHEN SQLSTATE 'PE006' THEN
        RETURN NULL;
END
$$;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

DROP FUNCTION {{ $s }}.try_msgpack_to_jsonb(bytea);
DROP FUNCTION {{ $s }}.msgpack_to_jsonb(bytea);
DROP FUNCTION {{ $s }}.msgpack_float_text(float8, boolean);
