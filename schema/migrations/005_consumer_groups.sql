{{- $s := .schema | default "es" -}}
-- es: consumer groups: a subscription run as N partitions (each an
-- ordinary subscription with its own checkpoint and lease, reading the
-- streams whose stream_partition(stream_id, N) is its number), shared by
-- the group's members. See schema/code/groups.sql.

SET LOCAL search_path = pg_catalog, pg_temp;

-- One row per group: the number of partitions it runs as now, and the one
-- before its last resize.
CREATE TABLE {{ $s }}.subscription_groups (
    group_name          text        NOT NULL,
    partitions          int         NOT NULL,
    previous_partitions int,
    created_at          timestamptz NOT NULL DEFAULT now(),
    resized_at          timestamptz,
    CONSTRAINT subscription_groups_pkey PRIMARY KEY (group_name),
    CONSTRAINT subscription_groups_group_name_check CHECK (group_name <> ''),
    CONSTRAINT subscription_groups_partitions_check CHECK (partitions BETWEEN 1 AND 1024)
);

-- The members of each group: a lease per member (holder: a random id per
-- running member; holder_pid: the backend it renews on), with the number
-- of partitions it was started with.
CREATE TABLE {{ $s }}.group_members (
    group_name text        NOT NULL,
    holder     text        NOT NULL,
    holder_pid int         NOT NULL,
    partitions int         NOT NULL,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_name, holder),
    CONSTRAINT group_members_holder_check CHECK (holder <> '')
);

-- The partitions of every group, by subscription id: which group, which
-- partition of how many (so that a partition's lag counts its own events).
CREATE TABLE {{ $s }}.subscription_partitions (
    subscription_id text NOT NULL,
    group_name      text NOT NULL,
    partition       int  NOT NULL,
    partitions      int  NOT NULL,
    CONSTRAINT subscription_partitions_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT subscription_partitions_group_key UNIQUE (group_name, partitions, partition),
    CONSTRAINT subscription_partitions_partition_check CHECK (partition >= 0 AND partition < partitions)
);

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

DROP TABLE {{ $s }}.subscription_partitions, {{ $s }}.group_members, {{ $s }}.subscription_groups;
