-- The state every service shares. Names of things Liscio owns say "account";
-- names of things QuickBooks owns say "customer".

-- A firm's QuickBooks connection. The refresh token rotates; it is stored encrypted.
CREATE TABLE connections (
    firm_id                 text PRIMARY KEY,
    realm_id                text NOT NULL UNIQUE,
    refresh_token_enc       bytea NOT NULL,
    access_token_enc        bytea,
    access_token_expires_at timestamptz,
    status                  text NOT NULL DEFAULT 'connected'
                            CHECK (status IN ('connected', 'needs_reconnect')),
    status_reason           text,
    connected_at            timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Liscio accounts as their latest event described them (kept even before a firm connects).
CREATE TABLE accounts (
    firm_id          text NOT NULL,
    account_id       text NOT NULL,
    name             text NOT NULL,
    name_folded      text NOT NULL,
    status           text,
    address          jsonb,
    phone            text,
    website          text,
    archived         boolean NOT NULL DEFAULT false,
    last_occurred_at timestamptz NOT NULL,
    attention        text,
    attention_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, account_id)
);
CREATE INDEX accounts_by_name ON accounts (firm_id, name_folded);

-- QuickBooks customers as the importer (or our own writes) last saw them.
CREATE TABLE customers (
    realm_id     text NOT NULL,
    customer_id  text NOT NULL,
    display_name text NOT NULL,
    name_folded  text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    deleted      boolean NOT NULL DEFAULT false,
    parent_id    text,
    sync_token   text,
    address      jsonb,
    phone        text,
    website      text,
    last_updated timestamptz,
    seen_run_id  uuid,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm_id, customer_id)
);
CREATE INDEX customers_by_name ON customers (realm_id, name_folded);
CREATE INDEX customers_by_run ON customers (realm_id, seen_run_id);

-- One account has at most one customer and one customer at most one account.
CREATE TABLE links (
    firm_id     text NOT NULL,
    account_id  text NOT NULL,
    realm_id    text NOT NULL,
    customer_id text NOT NULL,
    how         text NOT NULL CHECK (how IN ('auto', 'manual', 'created')),
    linked_at   timestamptz NOT NULL DEFAULT now(),
    -- NULL until the first-sync merge of this link has been applied; a link whose first
    -- sync was interrupted gets it (not the subsequent-sync rules) on the next attempt.
    first_synced_at timestamptz,
    PRIMARY KEY (firm_id, account_id),
    CONSTRAINT one_account_per_customer UNIQUE (realm_id, customer_id)
);

-- Names shared by several unlinked accounts or customers: left for a person to resolve.
CREATE TABLE ambiguities (
    firm_id      text NOT NULL,
    name_folded  text NOT NULL,
    account_ids  text[] NOT NULL,
    customer_ids text[] NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    run_id       uuid,
    PRIMARY KEY (firm_id, name_folded)
);

-- Every link change and every field written, with the reason.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    firm_id     text NOT NULL,
    account_id  text,
    realm_id    text,
    customer_id text,
    action      text NOT NULL,
    side        text CHECK (side IN ('quickbooks', 'liscio')),
    field       text,
    old_value   jsonb,
    new_value   jsonb,
    reason      text NOT NULL,
    run_id      uuid
);
CREATE INDEX audit_by_account ON audit_log (firm_id, account_id);

-- At-least-once delivery, effects once: a message id is handled once per consumer.
CREATE TABLE processed_messages (
    consumer     text NOT NULL,
    message_id   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Sync Now: a run and its three steps (import, match, push).
CREATE TABLE sync_runs (
    run_id       uuid PRIMARY KEY,
    firm_id      text NOT NULL,
    realm_id     text,
    kind         text NOT NULL CHECK (kind IN ('sync', 'replay')),
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    reason       text,
    request_ids  text[] NOT NULL DEFAULT '{}',
    requested_at timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz
);
-- Two Sync Nows for one firm at once become one run.
CREATE UNIQUE INDEX one_open_run_per_firm ON sync_runs (firm_id)
    WHERE status IN ('pending', 'running');

CREATE TABLE sync_run_steps (
    run_id      uuid NOT NULL REFERENCES sync_runs ON DELETE CASCADE,
    step        text NOT NULL CHECK (step IN ('import', 'match', 'push')),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
    counts      jsonb NOT NULL DEFAULT '{}',
    reason      text,
    started_at  timestamptz,
    finished_at timestamptz,
    -- A step is claimed by one process at a time; a crashed claimant's lease runs out.
    lease_until timestamptz,
    PRIMARY KEY (run_id, step)
);

-- Messages to publish, written in the same transaction as the change they announce,
-- so a crash between the database commit and the Kafka send loses nothing.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    value        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- A customer create recorded before QuickBooks is called, reconciled after a crash.
CREATE TABLE pending_creates (
    firm_id     text NOT NULL,
    account_id  text NOT NULL,
    request_id  text NOT NULL,
    event_id    text,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    customer_id text,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, account_id)
);

-- CDC high-water mark per realm.
CREATE TABLE cdc_marks (
    realm_id      text PRIMARY KEY,
    changed_since timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
