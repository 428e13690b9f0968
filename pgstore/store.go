package pgstore

import (
	"cmp"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
)

// Config configures a [Store]. A nil *Config uses every default.
type Config struct {
	// Schema is the schema the es tables and functions live in (see
	// [Migrate]). Defaults to "es".
	Schema string
	// ReadBatchSize is how many events [Store.ReadAll] and
	// [Store.ReadStream] fetch per query as they page through the log or a
	// stream; it bounds what a reader that stops early has fetched for
	// nothing. Defaults to 1000.
	ReadBatchSize int
}

func (c *Config) validate() error {
	if err := validSchema(c.Schema); err != nil {
		return err
	}
	if c.ReadBatchSize < 1 || c.ReadBatchSize > maxBatch {
		return fmt.Errorf("pgstore: ReadBatchSize must be between 1 and %d, got %d", maxBatch, c.ReadBatchSize)
	}
	return nil
}

// maxBatch is the largest page size: the SQL functions take an int4 count,
// and one more row than a page is fetched to tell whether another follows.
const maxBatch = math.MaxInt32 - 1

// Store is the PostgreSQL event store. It calls the PL/pgSQL functions of
// the es schema; it holds no state of its own beyond the pool and is safe
// for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	config Config
	sql    queries
}

var _ es.Store = (*Store)(nil)

// New returns a Store using pool. The schema must have been migrated (see
// [Migrate]).
func New(pool *pgxpool.Pool, config *Config) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("pgstore: New needs a pool")
	}
	var c Config
	if config != nil {
		c = *config
	}
	c.Schema = cmp.Or(c.Schema, DefaultSchema)
	c.ReadBatchSize = cmp.Or(c.ReadBatchSize, 1000)
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Store{pool: pool, config: c, sql: newQueries(c.Schema)}, nil
}

// Pool returns the pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema the store uses.
func (s *Store) Schema() string { return s.config.Schema }

// Channel returns the notification channel append signals: "<schema>_events".
func (s *Store) Channel() string { return s.config.Schema + "_events" }

// queries are the statements the store sends, qualified with its schema.
type queries struct {
	append, readStream, readStreamBackward, readAll, streamInfo string

	// Snapshots (snapshot.go).
	appendWithSnapshot, saveSnapshot, readSnapshot, load string
}

func newQueries(schema string) queries {
	const eventColumns = "global_position, transaction_id, version, event_id, event_type, data, metadata, recorded_at"
	return queries{
		append: "SELECT stream_version, last_position, transaction_id, first_version, first_position, first_transaction_id FROM " +
			schema + ".append($1, $2, $3, $4, $5, $6)",
		readStream:         "SELECT " + eventColumns + " FROM " + schema + ".read_stream($1, $2, $3)",
		readStreamBackward: "SELECT " + eventColumns + " FROM " + schema + ".read_stream_backward($1, $2, $3)",
		readAll:            "SELECT stream_id, " + eventColumns + " FROM " + schema + ".read_all($1, $2, $3, $4, $5)",
		streamInfo:         "SELECT version, stream_exists, created_at, updated_at FROM " + schema + ".stream_info($1)",

		appendWithSnapshot: "SELECT stream_version, last_position, transaction_id, first_version, first_position, first_transaction_id FROM " +
			schema + ".append($1, $2, $3, $4, $5, $6, $7, $8)",
		saveSnapshot: "SELECT " + schema + ".save_snapshot($1, $2, $3, $4)",
		readSnapshot: "SELECT version, schema_version, state, created_at FROM " + schema + ".snapshots WHERE stream_id = $1",
		load: "SELECT " + eventColumns + ", snapshot_schema_version, snapshot_state FROM " + schema +
			".load($1, $2) LIMIT $3",
	}
}
