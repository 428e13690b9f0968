-- One chunk of the bulk load: the events g = :g0+1 .. :g1 of the synthetic
-- log (see README.md in this directory for the shape), with the key
-- (transaction_id) of event g = :kbase + g. Run as the schema's owner.
--
-- Lane l = (g-1) % :lanes is one of :lanes streams being written at once;
-- its k-th event (k = (g-1) / :lanes) belongs to the lane's stream
-- k / len(l) at version k % len(l) + 1. Each event is its own transaction
-- (one key per event), so keys and global positions rise together and every
-- stream's keys rise with its versions, as es's append leaves them.
SET synchronous_commit = off; -- the bulk load only; measurements run with it on
INSERT INTO es.events (transaction_id, stream_id, version, event_id, event_type, data, metadata, recorded_at, schema_version)
SELECT (:kbase + g)::text::xid8,
       x.stream_id,
       x.version,
       -- A UUIDv7, as Go's uuid.NewV7 gives: 48 bits of milliseconds (the
       -- clock, so that ids keep rising across loads and the appends
       -- measure.sh makes between them), 12 bits of a counter, random bits.
       (lpad(to_hex((extract(epoch FROM x.at) * 1000)::bigint), 12, '0') || '7'
        || lpad(to_hex(g % 4096), 3, '0') || '8' || substr(x.m, 4, 15))::uuid,
       CASE WHEN x.version = 1 THEN initcap(x.cat) || 'Opened'
            ELSE initcap(x.cat) || (ARRAY['Changed', 'ItemAdded', 'ItemRemoved', 'Noted'])[1 + g % 4] END,
       -- 54 bytes of msgpack: {"id": <36-character string>, "amount": <uint32>}
       decode('82a26964d924', 'hex') || convert_to(x.m, 'UTF8') || decode('2d2d2d2d', 'hex')
           || decode('a6616d6f756e74ce', 'hex') || int4send((g % 100000)::int),
       NULL,
       x.at,
       1
  FROM generate_series(:g0 + 1, :g1) AS g
 CROSS JOIN LATERAL (
       SELECT l.cat,
              l.cat || '-' || lpad(l.lane::text, 4, '0') || '-' || ((g - 1) / :lanes) / l.len AS stream_id,
              ((g - 1) / :lanes) % l.len + 1 AS version,
              clock_timestamp() AS at,
              md5(g::text) AS m
         FROM (SELECT (g - 1) % :lanes AS lane,
                      (ARRAY['order', 'account', 'cart', 'invoice', 'payment', 'shipment', 'user', 'product',
                             'ticket', 'booking', 'device', 'session', 'claim', 'policy', 'loan', 'transfer',
                             'subscription', 'review', 'campaign', 'workflow'])[1 + ((g - 1) % :lanes) % 20] AS cat,
                      (ARRAY[10, 20, 50, 100, 200, 500, 1000])[1 + (((g - 1) % :lanes) * 37) % 7] AS len) AS l
       ) AS x
;
