{{- $s := .schema | default "es" -}}
-- es: msgpack → jsonb for querying events in SQL.
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
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_float_text(p_value float8, p_single boolean) RETURNS text
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
-- The es Go codec writes UUIDs as their canonical strings (a str8 of 36
-- characters) and times as timestamp extensions, so both come out readable.
--
-- PL/pgSQL pays for every statement and every function call, so the decoder
-- keeps both few per value. It walks the input once with an explicit stack
-- (no recursion) and appends the JSON text of each value, followed by ":"
-- (a map key) or "," (anything else), to an array of pieces, which it parses
-- once at the end; closing a container puts the bracket in place of the ","
-- after its last item. A FOR loop walks the items of a container (its
-- counter costs no statement per item). The common values come first and
-- take one branch of a few statements: fixstrs and str8s (one of ASCII
-- without '"', '\' and control characters, such as a key or a UUID, goes out
-- as encode(..., 'escape') leaves it), positive fixints, fixmaps and
-- fixarrays, nil/bool/negative fixints, numbers, timestamps of 4 and 8
-- bytes. Control characters are looked for once in the whole text at the
-- end; when there are some (rare), the walk starts again and escapes them.
-- The input gets 18 bytes of 0xc1 (a reserved type byte) appended: a value
-- of fixed size cut short by the end of the input reads them instead of
-- failing, which leaves the position past the end, where the next read (a
-- 0xc1) or the final check reports it. Lengths and counts are checked
-- before they are used. Every value moves the position forward by at least
-- one byte, so the walk ends within length + 1 values.
CREATE OR REPLACE FUNCTION {{ $s }}.msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    -- A plain (detoasted) copy, so that get_byte and substring stay O(1).
    b      bytea := p_data || '\xc1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1'::bytea;
    blen   int := length(p_data);
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
    out    text[] := '{}';    -- pieces of JSON text, each value followed by its separator
    -- The open container: the root is a one-item array of depth 0; the
    -- enclosing containers wait on the stack.
    depth  int := 0;
    c_map  boolean := false;
    c_left bigint := 1;       -- items to walk (a map has 2 per entry)
    -- s[d]: the container at depth d while the one it holds is open, as
    -- (items left after that one) << 32 | (index in out of that one's
    -- opening bracket) << 1 | (1 when a map).
    s      bigint[];
    -- false: printable ASCII strings go out as they are, control characters
    -- included, which the text is checked for once at the end; true: after
    -- finding one, the walk starts again and escapes them.
    careful boolean := false;
BEGIN
    <<attempt>>
    LOOP
    <<walk>>
    LOOP
        -- The items of the open container, c_left of them (or those left
        -- after an inner container): the item is a map key when
        -- c_left - i + 1 is even.
        FOR i IN 1 .. c_left LOOP
            c := get_byte(b, pos);
            IF c >= 160 AND c < 192 THEN                      -- fixstr
                -- encode(..., 'escape') leaves ASCII but NUL as it is and writes
                -- anything else with a '\': ASCII without '"', '\' (keys, UUIDs,
                -- most strings) and control characters needs no JSON escaping.
                t := encode(substring(b FROM pos + 2 FOR c - 160), 'escape');
                pos := pos + c - 159;
                IF pos <= blen AND strpos(t, '"') = 0 AND strpos(t, '\') = 0
                   AND (NOT careful OR t !~ '[\x01-\x1f]') THEN
                    out := out || ('"' || t || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN '":' ELSE '",' END);
                ELSE
                    -- Validated without raising (an EXCEPTION block would make
                    -- the function parallel unsafe): no NUL, then, read as
                    -- LATIN1 (one character per byte), it must match the UTF-8
                    -- grammar before convert_from.
                    sub := substring(b FROM pos - c + 160 + 1 FOR c - 160);
                    IF pos > blen OR position('\x00'::bytea IN sub) > 0 OR convert_from(sub, 'LATIN1') !~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % %', pos - c + 159,
                            CASE WHEN pos > blen THEN format('declares %s bytes, only %s left', c - 160, blen - pos + c - 160)
                                 WHEN position('\x00'::bytea IN sub) > 0 THEN 'contains NUL, which PostgreSQL text cannot hold'
                                 ELSE 'is not valid UTF-8' END
                            USING ERRCODE = 'PE006';
                    END IF;
                    out := out || (to_json(convert_from(sub, 'UTF8'))::text
                                   || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN ':' ELSE ',' END);
                END IF;
            ELSIF c < 128 THEN                                -- positive fixint
                out := out || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN '"' || c || '":' ELSE c || ',' END;
                pos := pos + 1;
            ELSIF c < 160 AND c & 15 <> 0 THEN                -- fixmap, fixarray (not empty)
                IF depth >= 512 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: nesting deeper than 512 at byte %', pos
                        USING ERRCODE = 'PE006';
                END IF;
                s[depth] := ((c_left - i) << 32) | ((cardinality(out) + 1) << 1) | CASE WHEN c_map THEN 1 ELSE 0 END;
                out := out || CASE WHEN c < 144 THEN '{' ELSE '[' END;
                depth := depth + 1;
                c_map := c < 144;
                c_left := CASE WHEN c < 144 THEN 2 * (c - 128) ELSE c - 144 END;
                pos := pos + 1;
                CONTINUE walk;
            ELSIF c >= 217 AND c <= 219 THEN                  -- str8/16/32
                k := CASE c
                    WHEN 217 THEN get_byte(b, pos + 1)
                    WHEN 218 THEN (get_byte(b, pos + 1) << 8) | get_byte(b, pos + 2)
                    ELSE (get_byte(b, pos + 1)::bigint << 24) | (get_byte(b, pos + 2) << 16)
                         | (get_byte(b, pos + 3) << 8) | get_byte(b, pos + 4) END;
                pos := pos + 1 + (1 << (c - 217));
                IF k > blen - pos THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % declares % bytes, only % left',
                        pos - 1 - (1 << (c - 217)), k, greatest(blen - pos, 0) USING ERRCODE = 'PE006';
                END IF;
                t := encode(substring(b FROM pos + 1 FOR k::int), 'escape');
                pos := pos + k::int;
                IF strpos(t, '"') = 0 AND strpos(t, '\') = 0 AND (NOT careful OR t !~ '[\x01-\x1f]') THEN
                    out := out || ('"' || t || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN '":' ELSE '",' END);
                ELSE
                    sub := substring(b FROM pos - k::int + 1 FOR k::int);
                    IF position('\x00'::bytea IN sub) > 0 OR convert_from(sub, 'LATIN1') !~ '^(?:[\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$' THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: string at byte % %', pos - k - 1 - (1 << (c - 217)),
                            CASE WHEN position('\x00'::bytea IN sub) > 0 THEN 'contains NUL, which PostgreSQL text cannot hold'
                                 ELSE 'is not valid UTF-8' END
                            USING ERRCODE = 'PE006';
                    END IF;
                    out := out || (to_json(convert_from(sub, 'UTF8'))::text
                                   || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN ':' ELSE ',' END);
                END IF;
            ELSIF c >= 224 OR c = 192 OR c = 194 OR c = 195 THEN  -- negative fixint, nil, false, true
                out := out || CASE WHEN c_map AND (c_left - i) % 2 = 1
                                   THEN '"' || CASE c WHEN 192 THEN 'null' WHEN 194 THEN 'false' WHEN 195 THEN 'true'
                                                      ELSE (c - 256)::text END || '":'
                                   ELSE CASE c WHEN 192 THEN 'null,' WHEN 194 THEN 'false,' WHEN 195 THEN 'true,'
                                               ELSE (c - 256) || ',' END END;
                pos := pos + 1;
            ELSIF c >= 202 AND c <= 211 THEN                  -- float32/64, uint8..64, int8..64
                e := CASE c WHEN 202 THEN 4 WHEN 203 THEN 8 ELSE 1 << ((c - 204) & 3) END;
                x := CASE e
                    WHEN 1 THEN get_byte(b, pos + 1)
                    WHEN 2 THEN (get_byte(b, pos + 1) << 8) | get_byte(b, pos + 2)
                    WHEN 4 THEN (get_byte(b, pos + 1)::bigint << 24) | (get_byte(b, pos + 2) << 16)
                                | (get_byte(b, pos + 3) << 8) | get_byte(b, pos + 4)
                    ELSE ('x' || encode(substring(b FROM pos + 2 FOR 8), 'hex'))::bit(64)::bigint END;
                pos := pos + 1 + e;
                t := CASE
                    WHEN c >= 208 THEN
                        CASE WHEN e < 8 AND x >= 1::bigint << (8 * e - 1) THEN x - (1::bigint << (8 * e)) ELSE x END::text
                    WHEN c >= 204 THEN
                        CASE WHEN x < 0 THEN (x::numeric + 18446744073709551616)::text ELSE x::text END
                    WHEN c = 203 THEN CASE
                        WHEN (x >> 52) & 2047 = 2047 THEN
                            CASE WHEN x & 4503599627370495 <> 0 THEN '"NaN"' WHEN x < 0 THEN '"-Infinity"' ELSE '"Infinity"' END
                        WHEN current_setting('extra_float_digits')::int >= 1 THEN
                            (CASE WHEN x < 0 THEN -1::float8 ELSE 1::float8 END
                             * CASE WHEN (x >> 52) & 2047 = 0 THEN (x & 4503599627370495)::float8 * power(2::float8, -1074)
                                    ELSE ((x & 4503599627370495) + 4503599627370496)::float8
                                         * power(2::float8, ((x >> 52) & 2047)::int - 1075) END)::text
                        ELSE {{ $s }}.msgpack_float_text(
                            CASE WHEN x < 0 THEN -1::float8 ELSE 1::float8 END
                            * CASE WHEN (x >> 52) & 2047 = 0 THEN (x & 4503599627370495)::float8 * power(2::float8, -1074)
                                   ELSE ((x & 4503599627370495) + 4503599627370496)::float8
                                        * power(2::float8, ((x >> 52) & 2047)::int - 1075) END, false) END
                    ELSE CASE
                        WHEN (x >> 23) & 255 = 255 THEN
                            CASE WHEN x & 8388607 <> 0 THEN '"NaN"' WHEN x >= 2147483648 THEN '"-Infinity"' ELSE '"Infinity"' END
                        WHEN current_setting('extra_float_digits')::int >= 1 THEN
                            (CASE WHEN x >= 2147483648 THEN -1::float8 ELSE 1::float8 END
                             * CASE WHEN (x >> 23) & 255 = 0 THEN (x & 8388607)::float8 * power(2::float8, -149)
                                    ELSE ((x & 8388607) + 8388608)::float8 * power(2::float8, ((x >> 23) & 255)::int - 150) END
                            )::float4::text
                        ELSE {{ $s }}.msgpack_float_text(
                            CASE WHEN x >= 2147483648 THEN -1::float8 ELSE 1::float8 END
                            * CASE WHEN (x >> 23) & 255 = 0 THEN (x & 8388607)::float8 * power(2::float8, -149)
                                   ELSE ((x & 8388607) + 8388608)::float8 * power(2::float8, ((x >> 23) & 255)::int - 150) END, true) END
                END;
                out := out || CASE WHEN NOT c_map OR (c_left - i) % 2 = 0 THEN t || ','
                                   WHEN left(t, 1) = '"' THEN t || ':'
                                   ELSE to_json(t::jsonb::text)::text || ':' END;
            ELSIF (c = 214 OR c = 215) AND get_byte(b, pos + 1) = 255 THEN  -- timestamp, 4 or 8 bytes
                -- 4 bytes: seconds; 8 bytes: nanoseconds << 34 | seconds.
                x := CASE WHEN c = 214
                          THEN (get_byte(b, pos + 2)::bigint << 24) | (get_byte(b, pos + 3) << 16)
                               | (get_byte(b, pos + 4) << 8) | get_byte(b, pos + 5)
                          ELSE ('x' || encode(substring(b FROM pos + 3 FOR 8), 'hex'))::bit(64)::bigint END;
                pos := pos + 4 * (c - 213) + 2;
                IF (x >> 34) & 1073741823 > 999999999 THEN
                    RAISE EXCEPTION 'msgpack_to_jsonb: timestamp before byte % has % nanoseconds, want at most 999999999',
                        pos, (x >> 34) & 1073741823 USING ERRCODE = 'PE006';
                END IF;
                -- The civil date of 0 <= seconds < 2^34 (years 1970 to 2514),
                -- as below: z days since 0000-03-01, doe the day of the 400-year era.
                z := (x & 17179869183) / 86400 + 719468;
                doe := z % 146097;
                yoe := (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
                doy := doe - (365 * yoe + yoe / 4 - yoe / 100);
                mp := (5 * doy + 2) / 153;
                secs := (x & 17179869183) % 86400;
                out := out || ('"' || (yoe + z / 146097 * 400 + CASE WHEN mp >= 10 THEN 1 ELSE 0 END)
                    || CASE WHEN mp < 7 THEN '-0' || (mp + 3) WHEN mp < 10 THEN '-' || (mp + 3) ELSE '-0' || (mp - 9) END
                    || CASE WHEN doy - (153 * mp + 2) / 5 < 9 THEN '-0' ELSE '-' END || (doy - (153 * mp + 2) / 5 + 1)
                    || CASE WHEN secs < 36000 THEN 'T0' ELSE 'T' END || secs / 3600
                    || CASE WHEN secs / 60 % 60 < 10 THEN ':0' ELSE ':' END || secs / 60 % 60
                    || CASE WHEN secs % 60 < 10 THEN ':0' ELSE ':' END || secs % 60
                    || CASE WHEN x >> 34 = 0 THEN ''
                            ELSE '.' || rtrim(substr((1000000000 + ((x >> 34) & 1073741823))::text, 2), '0') END
                    || CASE WHEN c_map AND (c_left - i) % 2 = 1 THEN 'Z":' ELSE 'Z",' END);
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
                    WHEN 1 THEN get_byte(b, pos + 1)
                    WHEN 2 THEN (get_byte(b, pos + 1) << 8) | get_byte(b, pos + 2)
                    ELSE (get_byte(b, pos + 1)::bigint << 24) | (get_byte(b, pos + 2) << 16)
                         | (get_byte(b, pos + 3) << 8) | get_byte(b, pos + 4) END;
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
                        IF depth >= 512 THEN
                            RAISE EXCEPTION 'msgpack_to_jsonb: nesting deeper than 512 before byte %', pos
                                USING ERRCODE = 'PE006';
                        END IF;
                        s[depth] := ((c_left - i) << 32) | ((cardinality(out) + 1) << 1) | CASE WHEN c_map THEN 1 ELSE 0 END;
                        out := out || CASE WHEN kind = 3 THEN '[' ELSE '{' END;
                        depth := depth + 1;
                        c_map := kind = 4;
                        c_left := k;
                        CONTINUE walk;
                    END IF;
                ELSE                                          -- bin, ext
                    IF kind = 5 THEN                          -- the extension's type
                        IF c >= 212 THEN
                            k := 1 << (c - 212);
                        END IF;
                        x := get_byte(b, pos);
                        pos := pos + 1;
                    END IF;
                    IF k > blen - pos THEN
                        RAISE EXCEPTION 'msgpack_to_jsonb: % before byte % declares % bytes, only % left',
                            CASE kind WHEN 2 THEN 'binary' ELSE 'extension' END,
                            pos, k, greatest(blen - pos, 0) USING ERRCODE = 'PE006';
                    END IF;
                    sub := substring(b FROM pos + 1 FOR k::int);
                    pos := pos + k::int;
                    IF kind = 2 THEN
                        t := '"' || translate(encode(sub, 'base64'), E'\n', '') || '"';
                    ELSIF x <> 255 THEN                       -- any extension but a timestamp
                        t := '{"ext": ' || CASE WHEN x >= 128 THEN x - 256 ELSE x END
                             || ', "data": "' || translate(encode(sub, 'base64'), E'\n', '') || '"}';
                    ELSE                                      -- timestamp extension (-1)
                        IF k = 4 THEN
                            nanos := 0;
                            secs := ('x' || encode(sub, 'hex'))::bit(32)::bigint;
                        ELSIF k = 8 THEN
                            x := ('x' || encode(sub, 'hex'))::bit(64)::bigint;
                            nanos := (x >> 34) & 1073741823;
                            secs := x & 17179869183;
                        ELSIF k = 12 THEN
                            nanos := ('x' || encode(substring(sub FROM 1 FOR 4), 'hex'))::bit(32)::bigint;
                            secs := ('x' || encode(substring(sub FROM 5 FOR 8), 'hex'))::bit(64)::bigint;
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
                        secs := secs % 86400;                 -- seconds of the day, 0..86399
                        IF secs < 0 THEN
                            z := z - 1;
                            secs := secs + 86400;
                        END IF;
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
                    END IF;
                END IF;
                -- A complete scalar (or empty container) in t.
                out := out || CASE WHEN NOT c_map OR (c_left - i) % 2 = 0 THEN t || ','
                                   WHEN left(t, 1) = '"' THEN t || ':'
                                   ELSE to_json(t::jsonb::text)::text || ':' END;
            END IF;
        END LOOP;

        -- The container's items are done: close it, and every container it completes.
        LOOP
            EXIT walk WHEN depth = 0;
            depth := depth - 1;
            x := s[depth];
            IF x & 1 = 1 AND (x >> 32) % 2 = 1 THEN       -- a map key: the string of its JSON text
                t := array_to_string(out[(x >> 1) & 2147483647 : cardinality(out)], '');
                IF NOT careful AND t ~ '[\x01-\x1f]' THEN      -- start again, escaping them
                    careful := true;
                    pos := 0;
                    out := '{}';
                    depth := 0;
                    c_map := false;
                    c_left := 1;
                    CONTINUE walk;
                END IF;
                out := out[1 : ((x >> 1) & 2147483647) - 1]
                       || (to_json((left(t, -1) || CASE WHEN c_map THEN '}' ELSE ']' END)::jsonb::text)::text || ':');
            ELSE
                out[cardinality(out)] := left(out[cardinality(out)], -1) || CASE WHEN c_map THEN '},' ELSE '],' END;
            END IF;
            c_map := x & 1 = 1;
            c_left := x >> 32;
            EXIT WHEN c_left > 0;
        END LOOP;
    END LOOP walk;
    -- (The statements of the attempt loop are not indented further.)
    out[cardinality(out)] := left(out[cardinality(out)], -1);   -- the "," after the value
    t := array_to_string(out, '');
    EXIT attempt WHEN careful OR t !~ '[\x01-\x1f]';
    careful := true;
    pos := 0;
    out := '{}';
    depth := 0;
    c_map := false;
    c_left := 1;
    END LOOP attempt;

    IF pos > blen THEN
        RAISE EXCEPTION 'msgpack_to_jsonb: unexpected end of input after % bytes', blen
            USING ERRCODE = 'PE006';
    ELSIF pos < blen THEN
        RAISE EXCEPTION 'msgpack_to_jsonb: % trailing bytes after the value at byte %', blen - pos, pos
            USING ERRCODE = 'PE006';
    END IF;
    RETURN t::jsonb;
END
$$;

-- try_msgpack_to_jsonb is msgpack_to_jsonb returning NULL where that raises
-- PE006 (malformed msgpack). It is PARALLEL RESTRICTED, not SAFE: its
-- EXCEPTION block starts a subtransaction, which parallel workers cannot.
CREATE OR REPLACE FUNCTION {{ $s }}.try_msgpack_to_jsonb(p_data bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL RESTRICTED AS $$
BEGIN
    RETURN {{ $s }}.msgpack_to_jsonb(p_data);
EXCEPTION
    WHEN SQLSTATE 'PE006' THEN
        RETURN NULL;
END
$$;
