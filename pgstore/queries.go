package pgstore

// queries are every statement the store sends, qualified with its schema:
// the one place that knows the SQL (the functions themselves live in the
// schema package's code package). Statements that take no schema-qualified
// object (LISTEN, SAVEPOINT) are built where they are sent.
type queries struct {
	// Appends (append.go, snapshot.go).
	append, appendWithSnapshot string
	// Reads (read.go).
	readStream, readStreamBackward, readAll, streamInfo string
	// Snapshots (snapshot.go).
	saveSnapshot, readSnapshot, load string
	// Checkpoints (checkpoint.go).
	readCheckpoint, advanceCheckpoint, deleteCheckpoint, resetCheckpoint string
	// Health (health.go): a subscription's, every subscription's, what
	// the active instance reports, what holds the horizon back.
	subscriptionHealth, subscriptions, reportStatus, horizonHolders string
	// Parked events (parked.go).
	parkedEvents, parkEvent, parkedRetried, retryParked, skipParked string
	// Subscriptions (subscribe.go, lease.go): the end of the visible log,
	// whether events are hidden behind the horizon, the leases.
	logEnd, logHidden, logEndHidden, logBehind, acquireLease, renewLease, releaseLease string
	// Consumer groups (group.go): a partition's reads, membership,
	// partitions, their checkpoints, a group's partition count, the
	// stream of an event (WaitFor).
	readPartitions, joinGroup, leaveGroup, takePartition, groupCheckpoints, groupPartitions, streamAt string
	// The lifecycle of streams (lifecycle.go).
	softDeleteStream, restoreStream, tombstoneStream, truncateStream, setStreamRetention, setCategoryRetention, applyRetention string
	// The archive (lifecycle.go).
	archiveEvents, archivePartitions, detachArchivePartition string
	// Replicas (replica.go, replica_subscribe.go): whether the event at a
	// position is there; how long ago the first event after a position was
	// recorded; what a subscription reports of its replica.
	positionShown, recordedAgo, reportReplica string
	// Data subjects' keys (keys.go).
	subjectKey, forgetSubject string
}

// Statements that do not depend on the schema.
const (
	setApplicationName = "SELECT pg_catalog.set_config('application_name', $1, false)"
	isInRecovery       = "SELECT pg_catalog.pg_is_in_recovery()"
)

func newQueries(schema string) queries {
	const (
		eventColumns  = "global_position, transaction_id, version, event_id, event_type, data, metadata, recorded_at, schema_version"
		appendColumns = "stream_version, last_position, transaction_id, first_version, first_position, first_transaction_id"
		healthColumns = "subscription_id, health, transaction_id, global_position, checkpoint_exists, last_progress_at, " +
			"events_behind, hidden_events, oldest_unhandled_at, rate, parked_events, last_error, reads_from, replica_lag"
	)
	return queries{
		append:             "SELECT " + appendColumns + " FROM " + schema + ".append($1, $2, $3, $4, $5, $6, $7)",
		appendWithSnapshot: "SELECT " + appendColumns + " FROM " + schema + ".append($1, $2, $3, $4, $5, $6, $7, $8, $9)",

		readStream:         "SELECT " + eventColumns + " FROM " + schema + ".read_stream($1, $2, $3)",
		readStreamBackward: "SELECT " + eventColumns + " FROM " + schema + ".read_stream_backward($1, $2, $3)",
		readAll:            "SELECT stream_id, " + eventColumns + " FROM " + schema + ".read_all($1, $2, $3, $4, $5)",
		streamInfo:         "SELECT version, stream_exists, created_at, updated_at FROM " + schema + ".stream_info($1)",

		saveSnapshot: "SELECT " + schema + ".save_snapshot($1, $2, $3, $4)",
		readSnapshot: "SELECT version, schema_version, state, created_at FROM " + schema + ".snapshots WHERE stream_id = $1",
		load:         "SELECT " + eventColumns + ", snapshot_schema_version, snapshot_state FROM " + schema + ".load($1, $2) LIMIT $3",

		softDeleteStream:     "SELECT " + schema + ".soft_delete_stream($1, $2)",
		restoreStream:        "SELECT " + schema + ".restore_stream($1)",
		tombstoneStream:      "SELECT " + schema + ".tombstone_stream($1, $2)",
		truncateStream:       "SELECT " + schema + ".truncate_stream($1, $2)",
		setStreamRetention:   "SELECT 1 FROM " + schema + ".set_stream_retention($1, $2, $3)",
		setCategoryRetention: "SELECT 1 FROM " + schema + ".set_category_retention($1, $2, $3)",
		applyRetention:       "SELECT streams_truncated, events_removed, more FROM " + schema + ".apply_retention($1, $2)",
		archiveEvents:        "SELECT " + schema + ".archive_events($1, $2, $3, $4)",
		archivePartitions: "SELECT partition_name, from_transaction_id, to_transaction_id, estimated_events, total_bytes, " +
			"tablespace FROM " + schema + ".archive_partitions()",
		detachArchivePartition: "SELECT " + schema + ".detach_archive_partition($1, $2)",
		positionShown:          "SELECT EXISTS (SELECT FROM " + schema + ".all_events WHERE transaction_id = $1 AND global_position = $2)",
		recordedAgo: "SELECT greatest(clock_timestamp() - recorded_at, interval '0') FROM " + schema + ".all_events " +
			"WHERE (transaction_id, global_position) > ($1, $2) ORDER BY transaction_id, global_position LIMIT 1",
		reportReplica: "SELECT " + schema + ".report_replica($1, $2, $3, $4)",

		readCheckpoint:    "SELECT transaction_id, global_position, checkpoint_exists FROM " + schema + ".read_checkpoint($1)",
		advanceCheckpoint: "SELECT 1 FROM " + schema + ".advance_checkpoint($1, $2, $3, $4, $5)",
		deleteCheckpoint:  "SELECT " + schema + ".delete_checkpoint($1)",
		resetCheckpoint:   "SELECT 1 FROM " + schema + ".reset_checkpoint($1, $2, $3)",

		subscriptionHealth: "SELECT " + healthColumns + " FROM " + schema + ".subscription_health($1)",
		subscriptions:      "SELECT " + healthColumns + " FROM " + schema + ".subscriptions_view",
		reportStatus:       "SELECT " + schema + ".report_status($1, $2, $3, $4, $5, $6, $7)",
		parkedEvents: "SELECT p.behind, p.error, p.attempts, p.parked_at, p.retry_requested_at IS NOT NULL, e.stream_id, " +
			"e.global_position, e.transaction_id, e.version, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at, " +
			"e.schema_version FROM " +
			schema + ".parked_events AS p JOIN " + schema + ".all_events AS e " +
			"ON e.transaction_id = p.transaction_id AND e.global_position = p.global_position " +
			"WHERE p.subscription_id = $1 AND p.resolved_at IS NULL ORDER BY p.transaction_id, p.global_position",
		parkEvent:     "SELECT " + schema + ".park_event($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		parkedRetried: "SELECT " + schema + ".parked_retried($1, $2, $3, $4, $5, $6)",
		retryParked:   "SELECT " + schema + ".retry_parked($1, $2, $3)",
		skipParked:    "SELECT " + schema + ".skip_parked($1, $2, $3)",
		horizonHolders: "SELECT pid, database, usename, application_name, state, xact_start, query_start, query, " +
			"backend_xid::text::bigint, prepared_gid FROM " + schema + ".horizon_holders()",

		logEnd:       "SELECT transaction_id, global_position FROM " + schema + ".log_end()",
		logHidden:    "SELECT " + schema + ".log_hidden($1, $2)",
		logEndHidden: "SELECT l.transaction_id, l.global_position, " + schema + ".log_hidden($1, $2) FROM " + schema + ".log_end() AS l",
		logBehind:    "SELECT events FROM " + schema + ".log_behind($1, $2, $3, $4, $5, $6)",
		acquireLease: "SELECT " + schema + ".acquire_lease($1, $2, $3)",
		renewLease:   "SELECT " + schema + ".renew_lease($1, $2, $3)",
		releaseLease: "SELECT " + schema + ".release_lease($1, $2)",

		readPartitions: "SELECT stream_id, " + eventColumns + " FROM " + schema + ".read_partitions($1, $2, $3, $4, $5, $6, $7)",
		joinGroup:      "SELECT members, free_partitions FROM " + schema + ".join_group($1, $2, $3, $4)",
		leaveGroup:     "SELECT " + schema + ".leave_group($1, $2)",
		takePartition:  "SELECT " + schema + ".take_partition($1, $2, $3, $4, $5, $6)",
		groupCheckpoints: "SELECT p.partitions, p.partition, c.transaction_id, c.global_position FROM " +
			schema + ".subscription_partitions AS p JOIN " + schema + ".checkpoints AS c ON c.subscription_id = p.subscription_id " +
			"WHERE p.group_name = $1",
		groupPartitions: "SELECT partitions FROM " + schema + ".subscription_groups WHERE group_name = $1",
		streamAt:        "SELECT stream_id FROM " + schema + ".all_events WHERE transaction_id = $1 AND global_position = $2",

		subjectKey:    "SELECT " + schema + ".subject_key($1, $2)",
		forgetSubject: "SELECT " + schema + ".forget_subject($1)",
	}
}
