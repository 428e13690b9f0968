{{- $s := .schema | default "es" -}}
-- es: msgpack → jsonb for querying events in SQL.
--
-- SQLSTATE raised:
--   PE006  malformed msgpack (truncated, bad length, reserved byte 0xc1,
--          trailing bytes, nesting deeper than 512, map keys that are
--          arrays or maps nested more than 4 deep, invalid UTF-8 or NUL in
--          a string, bad timestamp); the message names the byte position.
--
-- Every function here pins search_path to pg_catalog, pg_temp (pg_temp
-- last: it is only ever searched for types, and then after pg_catalog), so
-- that no function, operator or type that another login created in a
-- schema it may write (public, its own pg_temp) runs when someone else
-- decodes. The bodies do not rely on the pin alone: every function call
-- names pg_catalog, and every operator has operands of exactly the types
-- of one of pg_catalog's (bigint and integer meet only in +, -, *, / and
-- comparisons, which pg_catalog has for that pair; in %, &, | an integer
-- literal is cast to bigint). A search_path that does not name pg_catalog
-- searches it first, and an exact match found first wins: only an operator
-- whose operands needed a cast could be taken over by one elsewhere.
-- integration_test/decode_security_test.go proves both.

-- msgpack_float_text is the shortest text that reads back as the same
-- float8 (or float4 when p_single), whatever the session's
-- extra_float_digits: msgpack_to_jsonb calls it only when that setting is
-- below 1 (the default is 1), so that it does not pay for setting
-- extra_float_digits on every call.
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_float_text(p_value float8, p_single boolean) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET extra_float_digits = 1
SET search_path = pg_catalog, pg_temp
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
--   trailing zeros dropped (as Go's time.RFC3339Nano); an encrypted personal
--   field (extension 80, written by the es Go codec for a struct field
--   tagged es:"personal") → {"personal": "encrypted", "subject": "<its data
--   subject>"}, whether its key still exists or was deleted by
--   forget_subject (an IMMUTABLE function cannot look at keys: join
--   subject_erasures on the subject to tell an erased field); its content
--   is never shown, it needs the key; any other extension (or a malformed
--   extension 80) → {"ext": type, "data": base64}.
-- The es Go codec writes UUIDs as their canonical strings (a str8 of 36
-- characters) and times as timestamp extensions, so both come out readable.
--
-- Map keys that are non-empty arrays or maps nest at most 4 deep (such a
-- key may hold a map with such keys, and so on, 4 levels in all): each
-- level writes the text of the levels inside it as a JSON string, which
-- escapes every '"' and '\' in it once more, so the text can double with
-- each level. Deeper is refused (PE006), as is nesting deeper than 512.
--
-- Cost: linear in the input. PL/pgSQL pays for every statement and every
-- function call, so the decoder keeps both few per value, and it never does
-- work that grows with what came before (no copy of the output so far, no
-- array slice, which copies the whole array, no text grown in a loop). It
-- walks the input once with an explicit stack (no recursion) and appends the
-- JSON text of each value, preceded by its separator ("," between items, ":"
-- between a key and its value, nothing before a container's first item), to
-- an array of pieces, which it parses once at the end. array_append to an
-- array variable, reading or writing one element of it and cardinality()
-- take constant time: PL/pgSQL keeps the array expanded and changes it in
-- place. Opening a container appends its bracket, closing it the other one.
-- A FOR loop walks the items of a container (its counter costs no statement
-- per item). The common values come first and take one branch of a few
-- statements: fixstrs and str8s (one of ASCII without '"' and '\', such as a
-- key or a UUID, goes out as encode(..., 'escape') leaves it), positive
-- fixints, fixmaps and fixarrays, nil/bool/negative fixints, numbers,
-- timestamps of 4 and 8 bytes. Such a string goes out with its control
-- characters, if any: nothing else the decoder writes holds one, so they can
-- only be inside strings, and they are escaped in the whole text at the end
-- (31 replace() calls in C, when a regular expression finds one). A map key
-- that is a non-empty container is the one case that rewrites pieces: when
-- it closes, its pieces are moved into one text (escaped the same way),
-- parsed as jsonb (for jsonb's text of it) and written back as one JSON
-- string in the place of its first piece; the others become NULL, which
-- array_to_string skips. A piece (or the NULL left of it) is so visited once
-- for each container key around it, at most 4 times. The input gets 18 bytes
-- of 0xc1 (a reserved type byte) appended: a value of fixed size cut short
-- by the end of the input reads them instead of failing, which leaves the
-- position past the end, where the next read (a 0xc1) or the final check
-- reports it. Lengths and counts are checked before they are used. Every
-- value moves the position forward by at least one byte, so the walk ends
-- within length + 1 values.
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- A plain (detoasted) copy, so that get_byte and substring stay O(1).
    b      bytea := p_data || '\xc1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1'::bytea;
    blen   int := pg_catalog.length(p_data);
    pos    int := 0;          -- offset of the next byte (0-based)
    c      int;               -- type byte of the current value
    kind   int;               -- 2 bin, 3 array, 4 map, 5 ext
    k      bigint;            -- length or item count
    x      bigint;
    e      int;
    t      text;
    sub    bytea;
    secs   bigint;
    nanos  bigint;
    z      bigint;
    era    bigint;
    doe    bigint;
    yoe    bigint;
    doy    bigint;
    mp     bigint;
    yr     bigint;
    out    text[] := '{}';    -- pieces of JSON text, each value preceded by its separator
    kp     text[];            -- the pieces of a container key as it closes
    -- The open container: the root is a one-item array of depth 0, written
    -- without brackets; the enclosing containers wait on the stack.
    depth  int := 0;
    c_map  boolean := false;
    c_left int := 1;          -- items to walk (a map has 2 per entry)
    c_new  boolean := true;   -- its first item is still to come
    -- s[d]: the container at depth d while the one it holds is open, as
    -- (items left after that one) << 32 | (index in out of that one's
    -- opening bracket) << 1 | (1 when a map).
    s      bigint[];
    keys   int := 0;          -- open containers that are map keys
BEGIN
    <<walk>>
    LOOP
        -- The items of the open container, c_left of them (or those left
        -- after an inner container): the item is a map key when
        -- c_left - i + 1 is even. Its separator: ':' for a map's value,
        -- nothing for the container's first item, else ','.
        FOR i IN 1 .. c_left LOOP
            c := pg_catalog.get_byte(b, pos);
            IF c >= 160 AND c < 192 THEN                      -- fixstr
                -- encode(..., 'escape') leaves ASCII but NUL as it is and writes
                -- anything else with a '\': ASCII without '"', '\' (keys, UUIDs,
                -- most strings) needs no JSON escaping but of control characters,
                -- which wait for the end.
                t := pg_catalog.encode(pg_catalog.substring(b, pos + 2, c - 160), 'escape');
                pos := pos + c - 159;
                IF pos <= blen AND pg_catalog.strpos(t, '"') = 0 AND pg_catalog.strpos(t, '\') = 0 THEN
                    out := pg_catalog.array_append(out,
                        CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':"' WHEN c_new AND i = 1 THEN '"' ELSE ',"' END
                        || t || '"');
                ELSE
                    -- Validated without raising (an EXCEPTION block would make
                    -- the function parallel unsafe): no NUL, then, read as
                    -- LATIN1 (one character per byte), it must match the UTF-8
                    -- grammar before convert_from.
                    sub := pg_catalog.substring(b, pos - c + 161, c - 160);
                    IF pos > blen OR pg_catalog.position(sub, '\x00'::bytea) > 0 OR pg_catalog.convert_from(sub, 'LATIN1') !~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % %', pos - c + 159,
                            CASE WHEN pos > blen THEN pg_catalog.format('declares %s bytes, only %s left', c - 160, blen - pos + c - 160)
                                 WHEN pg_catalog.position(sub, '\x00'::bytea) > 0 THEN 'contains NUL, which PostgreSQL text cannot hold'
                                 ELSE 'is not valid UTF-8' END
                            USING ERRCODE = 'PE006';
                    END IF;
                    out := pg_catalog.array_append(out,
                        CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':' WHEN c_new AND i = 1 THEN '' ELSE ',' END
                        || pg_catalog.to_json(pg_catalog.convert_from(sub, 'UTF8'))::text);
                END IF;
            ELSIF c < 128 THEN                                -- positive fixint
                out := pg_catalog.array_append(out,
                    CASE WHEN NOT c_map THEN CASE WHEN c_new AND i = 1 THEN c::text ELSE ',' || c::text END
                         WHEN (c_left - i) % 2 = 0 THEN ':' || c::text
                         WHEN c_new AND i = 1 THEN '"' || c::text || '"'
                         ELSE ',"' || c::text || '"' END);
                pos := pos + 1;
            ELSIF c < 160 AND c & 15 <> 0 THEN                -- fixmap, fixarray (not empty)
                IF depth >= 512 OR (c_map AND (c_left - i) % 2 = 1) THEN
                    IF depth >= 512 THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: nesting deeper than 512 at byte %', pos
                            USING ERRCODE = 'PE006';
                    ELSIF keys >= 4 THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: map keys that are arrays or maps nested deeper than 4 at byte %', pos
                            USING ERRCODE = 'PE006';
                    END IF;
                    keys := keys + 1;
                END IF;
                s[depth] := ((c_left - i)::bigint << 32) | ((pg_catalog.cardinality(out) + 1)::bigint << 1)
                            | CASE WHEN c_map THEN 1::bigint ELSE 0::bigint END;
                out := pg_catalog.array_append(out,
                    CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':' WHEN c_new AND i = 1 THEN '' ELSE ',' END
                    || CASE WHEN c < 144 THEN '{' ELSE '[' END);
                depth := depth + 1;
                c_map := c < 144;
                c_left := CASE WHEN c < 144 THEN 2 * (c - 128) ELSE c - 144 END;
                c_new := true;
                pos := pos + 1;
                CONTINUE walk;
            ELSIF c >= 217 AND c <= 219 THEN                  -- str8/16/32
                k := CASE c
                    WHEN 217 THEN pg_catalog.get_byte(b, pos + 1)
                    WHEN 218 THEN (pg_catalog.get_byte(b, pos + 1) << 8) | pg_catalog.get_byte(b, pos + 2)
                    ELSE (pg_catalog.get_byte(b, pos + 1)::bigint << 24)
                         | ((pg_catalog.get_byte(b, pos + 2) << 16) | (pg_catalog.get_byte(b, pos + 3) << 8)
                            | pg_catalog.get_byte(b, pos + 4))::bigint END;
                pos := pos + 1 + (1 << (c - 217));
                IF k > blen - pos THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % declares % bytes, only % left',
                        pos - 1 - (1 << (c - 217)), k, greatest(blen - pos, 0) USING ERRCODE = 'PE006';
                END IF;
                t := pg_catalog.encode(pg_catalog.substring(b, pos + 1, k::int), 'escape');
                pos := pos + k::int;
                IF pg_catalog.strpos(t, '"') = 0 AND pg_catalog.strpos(t, '\') = 0 THEN
                    out := pg_catalog.array_append(out,
                        CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':"' WHEN c_new AND i = 1 THEN '"' ELSE ',"' END
                        || t || '"');
                ELSE
                    sub := pg_catalog.substring(b, pos - k::int + 1, k::int);
                    IF pg_catalog.position(sub, '\x00'::bytea) > 0 OR pg_catalog.convert_from(sub, 'LATIN1') !~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % %', pos - k - 1 - (1 << (c - 217)),
                            CASE WHEN pg_catalog.position(sub, '\x00'::bytea) > 0 THEN 'contains NUL, which PostgreSQL text cannot hold'
                                 ELSE 'is not valid UTF-8' END
                            USING ERRCODE = 'PE006';
                    END IF;
                    out := pg_catalog.array_append(out,
                        CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':' WHEN c_new AND i = 1 THEN '' ELSE ',' END
                        || pg_catalog.to_json(pg_catalog.convert_from(sub, 'UTF8'))::text);
                END IF;
            ELSIF c >= 224 OR c = 192 OR c = 194 OR c = 195 THEN  -- negative fixint, nil, false, true
                out := pg_catalog.array_append(out,
                    CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN CASE WHEN c_new AND i = 1 THEN '"' ELSE ',"' END
                         WHEN c_map THEN ':' WHEN c_new AND i = 1 THEN '' ELSE ',' END
                    || CASE c WHEN 192 THEN 'null' WHEN 194 THEN 'false' WHEN 195 THEN 'true' ELSE (c - 256)::text END
                    || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN '"' ELSE '' END);
                pos := pos + 1;
            ELSIF c >= 202 AND c <= 211 THEN                  -- float32/64, uint8..64, int8..64
                e := CASE c WHEN 202 THEN 4 WHEN 203 THEN 8 ELSE 1 << ((c - 204) & 3) END;
                x := CASE e
                    WHEN 1 THEN pg_catalog.get_byte(b, pos + 1)
                    WHEN 2 THEN (pg_catalog.get_byte(b, pos + 1) << 8) | pg_catalog.get_byte(b, pos + 2)
                    WHEN 4 THEN (pg_catalog.get_byte(b, pos + 1)::bigint << 24)
                                | ((pg_catalog.get_byte(b, pos + 2) << 16) | (pg_catalog.get_byte(b, pos + 3) << 8)
                                   | pg_catalog.get_byte(b, pos + 4))::bigint
                    ELSE ('x' || pg_catalog.encode(pg_catalog.substring(b, pos + 2, 8), 'hex'))::bit(64)::bigint END;
                pos := pos + 1 + e;
                t := CASE
                    WHEN c >= 208 THEN
                        CASE WHEN e < 8 AND x >= 1::bigint << (8 * e - 1) THEN x - (1::bigint << (8 * e)) ELSE x END::text
                    WHEN c >= 204 THEN
                        CASE WHEN x < 0 THEN (x::numeric + 18446744073709551616::numeric)::text ELSE x::text END
                    WHEN c = 203 THEN CASE
                        WHEN (x >> 52) & 2047::bigint = 2047 THEN
                            CASE WHEN x & 4503599627370495 <> 0 THEN '"NaN"' WHEN x < 0 THEN '"-Infinity"' ELSE '"Infinity"' END
                        WHEN pg_catalog.current_setting('extra_float_digits')::int >= 1 THEN
                            (CASE WHEN x < 0 THEN -1::float8 ELSE 1::float8 END
                             * CASE WHEN (x >> 52) & 2047::bigint = 0 THEN (x & 4503599627370495)::float8 * pg_catalog.power(2::float8, -1074::float8)
                                    ELSE ((x & 4503599627370495) + 4503599627370496)::float8
                                         * pg_catalog.power(2::float8, (((x >> 52) & 2047::bigint)::int - 1075)::float8) END)::text
                        ELSE {{ $s }}.msgpack_float_text(
                            CASE WHEN x < 0 THEN -1::float8 ELSE 1::float8 END
                            * CASE WHEN (x >> 52) & 2047::bigint = 0 THEN (x & 4503599627370495)::float8 * pg_catalog.power(2::float8, -1074::float8)
                                   ELSE ((x & 4503599627370495) + 4503599627370496)::float8
                                        * pg_catalog.power(2::float8, (((x >> 52) & 2047::bigint)::int - 1075)::float8) END, false) END
                    ELSE CASE
                        WHEN (x >> 23) & 255::bigint = 255 THEN
                            CASE WHEN x & 8388607::bigint <> 0 THEN '"NaN"' WHEN x >= 2147483648 THEN '"-Infinity"' ELSE '"Infinity"' END
                        WHEN pg_catalog.current_setting('extra_float_digits')::int >= 1 THEN
                            (CASE WHEN x >= 2147483648 THEN -1::float8 ELSE 1::float8 END
                             * CASE WHEN (x >> 23) & 255::bigint = 0 THEN (x & 8388607::bigint)::float8 * pg_catalog.power(2::float8, -149::float8)
                                    ELSE ((x & 8388607::bigint) + 8388608)::float8
                                         * pg_catalog.power(2::float8, (((x >> 23) & 255::bigint)::int - 150)::float8) END
                            )::float4::text
                        ELSE {{ $s }}.msgpack_float_text(
                            CASE WHEN x >= 2147483648 THEN -1::float8 ELSE 1::float8 END
                            * CASE WHEN (x >> 23) & 255::bigint = 0 THEN (x & 8388607::bigint)::float8 * pg_catalog.power(2::float8, -149::float8)
                                   ELSE ((x & 8388607::bigint) + 8388608)::float8
                                        * pg_catalog.power(2::float8, (((x >> 23) & 255::bigint)::int - 150)::float8) END, true) END
                END;
                out := pg_catalog.array_append(out,
                    CASE WHEN NOT c_map THEN CASE WHEN c_new AND i = 1 THEN t ELSE ',' || t END
                         WHEN (c_left - i) % 2 = 0 THEN ':' || t
                         ELSE CASE WHEN c_new AND i = 1 THEN '' ELSE ',' END
                              || CASE WHEN pg_catalog.left(t, 1) = '"' THEN t
                                      ELSE pg_catalog.to_json(t::jsonb::text)::text END END);
            ELSIF (c = 214 OR c = 215) AND pg_catalog.get_byte(b, pos + 1) = 255 THEN  -- timestamp, 4 or 8 bytes
                -- 4 bytes: seconds; 8 bytes: nanoseconds << 34 | seconds.
                x := CASE WHEN c = 214
                          THEN (pg_catalog.get_byte(b, pos + 2)::bigint << 24)
                               | ((pg_catalog.get_byte(b, pos + 3) << 16) | (pg_catalog.get_byte(b, pos + 4) << 8)
                                  | pg_catalog.get_byte(b, pos + 5))::bigint
                          ELSE ('x' || pg_catalog.encode(pg_catalog.substring(b, pos + 3, 8), 'hex'))::bit(64)::bigint END;
                pos := pos + 4 * (c - 213) + 2;
                IF (x >> 34) & 1073741823::bigint > 999999999 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: timestamp before byte % has % nanoseconds, want at most 999999999',
                        pos, (x >> 34) & 1073741823::bigint USING ERRCODE = 'PE006';
                END IF;
                -- The civil date of 0 <= seconds < 2^34 (years 1970 to 2514),
                -- as below: z days since 0000-03-01, doe the day of the 400-year era.
                z := (x & 17179869183) / 86400 + 719468;
                doe := z % 146097::bigint;
                yoe := (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
                doy := doe - (365 * yoe + yoe / 4 - yoe / 100);
                mp := (5 * doy + 2) / 153;
                secs := (x & 17179869183) % 86400::bigint;
                out := pg_catalog.array_append(out,
                    CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':"' WHEN c_new AND i = 1 THEN '"' ELSE ',"' END
                    || (yoe + z / 146097 * 400 + CASE WHEN mp >= 10 THEN 1 ELSE 0 END)::text
                    || CASE WHEN mp < 7 THEN '-0' || (mp + 3)::text WHEN mp < 10 THEN '-' || (mp + 3)::text ELSE '-0' || (mp - 9)::text END
                    || CASE WHEN doy - (153 * mp + 2) / 5 < 9 THEN '-0' ELSE '-' END || (doy - (153 * mp + 2) / 5 + 1)::text
                    || CASE WHEN secs < 36000 THEN 'T0' ELSE 'T' END || (secs / 3600)::text
                    || CASE WHEN secs / 60 % 60::bigint < 10 THEN ':0' ELSE ':' END || (secs / 60 % 60::bigint)::text
                    || CASE WHEN secs % 60::bigint < 10 THEN ':0' ELSE ':' END || (secs % 60::bigint)::text
                    || CASE WHEN x >> 34 = 0 THEN ''
                            ELSE '.' || pg_catalog.rtrim(pg_catalog.substr((1000000000 + ((x >> 34) & 1073741823::bigint))::text, 2), '0') END
                    || 'Z"');
            ELSE
                IF c = 193 THEN
                    IF pos >= blen THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: unexpected end of input after % bytes', blen
                            USING ERRCODE = 'PE006';
                    END IF;
                    RAISE EXCEPTION 'msgpack_to_jsonb: reserved type byte 0xc1 at byte %', pos
                        USING ERRCODE = 'PE006';
                END IF;
                -- Empty fixmap or fixarray, or a type with a length (or count)
                -- of e bytes after the type byte.
                e := CASE WHEN c < 160 THEN 0
                          WHEN c IN (196, 199) THEN 1                      -- bin8, ext8
                          WHEN c IN (197, 200, 220, 222) THEN 2            -- bin16, ext16, array16, map16
                          WHEN c IN (198, 201, 221, 223) THEN 4            -- bin32, ext32, array32, map32
                          ELSE 0 END;                                      -- fixext1..16 (212..216)
                k := CASE e
                    WHEN 0 THEN 0
                    WHEN 1 THEN pg_catalog.get_byte(b, pos + 1)
                    WHEN 2 THEN (pg_catalog.get_byte(b, pos + 1) << 8) | pg_catalog.get_byte(b, pos + 2)
                    ELSE (pg_catalog.get_byte(b, pos + 1)::bigint << 24)
                         | ((pg_catalog.get_byte(b, pos + 2) << 16) | (pg_catalog.get_byte(b, pos + 3) << 8)
                            | pg_catalog.get_byte(b, pos + 4))::bigint END;
                pos := pos + 1 + e;
                kind := CASE WHEN c < 144 OR c >= 222 THEN 4 WHEN c < 160 OR c >= 220 THEN 3 WHEN c <= 198 THEN 2 ELSE 5 END;
                IF kind = 3 OR kind = 4 THEN                  -- array or map
                    IF k = 0 THEN
                        t := CASE WHEN kind = 3 THEN '[]' ELSE '{}' END;
                    ELSE
                        IF kind = 4 THEN
                            k := k * 2;
                        END IF;
                        IF k > blen - pos THEN
                            RAISE EXCEPTION 'msgpack_to_jsonb: % before byte % declares % items, only % bytes left',
                                CASE WHEN kind = 3 THEN 'array' ELSE 'map' END, pos, k, greatest(blen - pos, 0)
                                USING ERRCODE = 'PE006';
                        END IF;
                        IF depth >= 512 OR (c_map AND (c_left - i) % 2 = 1) THEN
                            IF depth >= 512 THEN
                                RAISE EXCEPTION 'msgpack_to_jsonb: nesting deeper than 512 before byte %', pos
                                    USING ERRCODE = 'PE006';
                            ELSIF keys >= 4 THEN
                                RAISE EXCEPTION 'msgpack_to_jsonb: map keys that are arrays or maps nested deeper than 4 before byte %', pos
                                    USING ERRCODE = 'PE006';
                            END IF;
                            keys := keys + 1;
                        END IF;
                        s[depth] := ((c_left - i)::bigint << 32) | ((pg_catalog.cardinality(out) + 1)::bigint << 1)
                                    | CASE WHEN c_map THEN 1::bigint ELSE 0::bigint END;
                        out := pg_catalog.array_append(out,
                            CASE WHEN c_map AND (c_left - i) % 2 = 0 THEN ':' WHEN c_new AND i = 1 THEN '' ELSE ',' END
                            || CASE WHEN kind = 3 THEN '[' ELSE '{' END);
                        depth := depth + 1;
                        c_map := kind = 4;
                        c_left := k::int;
                        c_new := true;
                        CONTINUE walk;
                    END IF;
                ELSE                                          -- bin, ext
                    IF kind = 5 THEN                          -- the extension's type
                        IF c >= 212 THEN
                            k := 1 << (c - 212);
                        END IF;
                        x := pg_catalog.get_byte(b, pos);
                        pos := pos + 1;
                    END IF;
                    IF k > blen - pos THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: % before byte % declares % bytes, only % left',
                            CASE kind WHEN 2 THEN 'binary' ELSE 'extension' END,
                            pos, k, greatest(blen - pos, 0) USING ERRCODE = 'PE006';
                    END IF;
                    sub := pg_catalog.substring(b, pos + 1, k::int);
                    pos := pos + k::int;
                    IF kind = 2 THEN
                        t := '"' || pg_catalog.translate(pg_catalog.encode(sub, 'base64'), E'\n', '') || '"';
                    ELSIF x <> 255 THEN                       -- any extension but a timestamp
                        t := NULL;
                        IF x = 80 AND k >= 31 THEN            -- an encrypted personal field?
                            -- Format 1, the subject's length (2 bytes), the subject,
                            -- a 12-byte nonce, at least a 16-byte tag: its subject is
                            -- shown, never its content (which needs the key).
                            e := (pg_catalog.get_byte(sub, 1) << 8) | pg_catalog.get_byte(sub, 2);
                            IF pg_catalog.get_byte(sub, 0) = 1 AND k >= 31 + e
                               AND pg_catalog.position(pg_catalog.substring(sub, 4, e), '\x00'::bytea) = 0
                               AND pg_catalog.convert_from(pg_catalog.substring(sub, 4, e), 'LATIN1') ~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                                t := '{"personal": "encrypted", "subject": '
                                     || pg_catalog.to_json(pg_catalog.convert_from(pg_catalog.substring(sub, 4, e), 'UTF8'))::text || '}';
                            END IF;
                        END IF;
                        IF t IS NULL THEN
                            t := '{"ext": ' || (CASE WHEN x >= 128 THEN x - 256 ELSE x END)::text
                                 || ', "data": "' || pg_catalog.translate(pg_catalog.encode(sub, 'base64'), E'\n', '') || '"}';
                        END IF;
                    ELSE                                      -- timestamp extension (-1)
                        IF k = 4 THEN
                            nanos := 0;
                            secs := ('x' || pg_catalog.encode(sub, 'hex'))::bit(32)::bigint;
                        ELSIF k = 8 THEN
                            x := ('x' || pg_catalog.encode(sub, 'hex'))::bit(64)::bigint;
                            nanos := (x >> 34) & 1073741823::bigint;
                            secs := x & 17179869183;
                        ELSIF k = 12 THEN
                            nanos := ('x' || pg_catalog.encode(pg_catalog.substring(sub, 1, 4), 'hex'))::bit(32)::bigint;
                            secs := ('x' || pg_catalog.encode(pg_catalog.substring(sub, 5, 8), 'hex'))::bit(64)::bigint;
                        ELSE
                            RAISE EXCEPTION 'msgpack_to_jsonb: timestamp extension before byte % has % data bytes, want 4, 8 or 12',
                                pos, k USING ERRCODE = 'PE006';
                        END IF;
                        IF nanos > 999999999 THEN
                            RAISE EXCEPTION 'msgpack_to_jsonb: timestamp before byte % has % nanoseconds, want at most 999999999',
                                pos, nanos USING ERRCODE = 'PE006';
                        END IF;
                        -- Civil date from days since 1970-01-01 (H. Hinnant's
                        -- algorithm), exact over the whole int64 range of seconds.
                        z := secs / 86400;
                        secs := secs % 86400::bigint;         -- seconds of the day, 0..86399
                        IF secs < 0 THEN
                            z := z - 1;
                            secs := secs + 86400;
                        END IF;
                        z := z + 719468;
                        era := pg_catalog.div((z - CASE WHEN z < 0 THEN 146096 ELSE 0 END)::numeric, 146097::numeric);
                        doe := z - era * 146097;
                        yoe := (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
                        doy := doe - (365 * yoe + yoe / 4 - yoe / 100);
                        mp := (5 * doy + 2) / 153;
                        yr := yoe + era * 400 + CASE WHEN mp >= 10 THEN 1 ELSE 0 END;
                        t := '"' || CASE WHEN yr < 0 THEN '-' ELSE '' END
                             || CASE WHEN pg_catalog.abs(yr) < 10000 THEN pg_catalog.lpad(pg_catalog.abs(yr)::text, 4, '0')
                                     ELSE pg_catalog.abs(yr)::text END
                             || '-' || pg_catalog.lpad((CASE WHEN mp < 10 THEN mp + 3 ELSE mp - 9 END)::text, 2, '0')
                             || '-' || pg_catalog.lpad((doy - (153 * mp + 2) / 5 + 1)::text, 2, '0')
                             || 'T' || pg_catalog.lpad((secs / 3600)::text, 2, '0')
                             || ':' || pg_catalog.lpad((secs / 60 % 60::bigint)::text, 2, '0')
                             || ':' || pg_catalog.lpad((secs % 60::bigint)::text, 2, '0')
                             || CASE WHEN nanos = 0 THEN '' ELSE '.' || pg_catalog.rtrim(pg_catalog.lpad(nanos::text, 9, '0'), '0') END
                             || 'Z"';
                    END IF;
                END IF;
                -- A complete scalar (or empty container) in t.
                out := pg_catalog.array_append(out,
                    CASE WHEN NOT c_map THEN CASE WHEN c_new AND i = 1 THEN t ELSE ',' || t END
                         WHEN (c_left - i) % 2 = 0 THEN ':' || t
                         ELSE CASE WHEN c_new AND i = 1 THEN '' ELSE ',' END
                              || CASE WHEN pg_catalog.left(t, 1) = '"' THEN t
                                      ELSE pg_catalog.to_json(t::jsonb::text)::text END END);
            END IF;
        END LOOP;

        -- The container's items are done: close it, and every container it completes.
        LOOP
            EXIT walk WHEN depth = 0;
            depth := depth - 1;
            x := s[depth];
            IF x & 1::bigint = 1 AND (x >> 32) % 2::bigint = 1 THEN   -- a map key: the string of its jsonb text
                -- Its pieces, from its opening bracket on, move into one text
                -- (array_to_string skips the NULLs left by container keys in it).
                e := ((x >> 1) & 2147483647::bigint)::int;
                kp := '{}';
                FOR j IN e .. pg_catalog.cardinality(out) LOOP
                    kp := pg_catalog.array_append(kp, out[j]);
                    out[j] := NULL;
                END LOOP;
                t := pg_catalog.array_to_string(kp, '') || CASE WHEN c_map THEN '}' ELSE ']' END;
                IF t ~ '[\x01-\x1f]' THEN                 -- control characters: jsonb wants them escaped
                    FOR j IN 1 .. 31 LOOP
                        t := pg_catalog.replace(t, pg_catalog.chr(j), '\u' || pg_catalog.lpad(pg_catalog.to_hex(j), 4, '0'));
                    END LOOP;
                END IF;
                -- The text starts with the key's separator: ',' or nothing.
                out[e] := CASE WHEN pg_catalog.left(t, 1) = ',' THEN ',' ELSE '' END
                          || pg_catalog.to_json(pg_catalog.ltrim(t, ',')::jsonb::text)::text;
                keys := keys - 1;
            ELSE
                out := pg_catalog.array_append(out, CASE WHEN c_map THEN '}' ELSE ']' END);
            END IF;
            c_map := x & 1::bigint = 1;
            c_left := (x >> 32)::int;
            EXIT WHEN c_left > 0;
        END LOOP;
        c_new := false;
    END LOOP walk;

    IF pos > blen THEN
        RAISE EXCEPTION 'msgpack_to_jsonb: unexpected end of input after % bytes', blen
            USING ERRCODE = 'PE006';
    ELSIF pos < blen THEN
        RAISE EXCEPTION 'msgpack_to_jsonb: % trailing bytes after the value at byte %', blen - pos, pos
            USING ERRCODE = 'PE006';
    END IF;
    t := pg_catalog.array_to_string(out, '');
    IF t ~ '[\x01-\x1f]' THEN                             -- control characters in strings: escape them
        FOR j IN 1 .. 31 LOOP
            t := pg_catalog.replace(t, pg_catalog.chr(j), '\u' || pg_catalog.lpad(pg_catalog.to_hex(j), 4, '0'));
        END LOOP;
    END IF;
    RETURN t::jsonb;
END
$$;

-- try_msgpack_to_jsonb is msgpack_to_jsonb returning NULL where that raises
-- PE006 (malformed msgpack). It is PARALLEL RESTRICTED, not SAFE: its
-- EXCEPTION block starts a subtransaction, which parallel workers cannot.
CREATE OR REPLACE FUNCTION {{ $s }}.try_msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN {{ $s }}.msgpack_to_jsonb(p_data);
EXCEPTION
    WHEN SQLSTATE 'PE006' THEN
        RETURN NULL;
END
$$;
