-- Apps belong to tenants; several tenants may claim one name until one of them proves it.

-- The app registry: an app name is a DNS label, unique across all tenants, so a CNAME target
-- `{app}.{PLATFORM_ZONE}` names exactly one tenant's app. `upstream` (host:port) overrides
-- UPSTREAM_TEMPLATE for this app.
CREATE TABLE apps (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    upstream    TEXT,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL
);
CREATE INDEX apps_tenant ON apps (tenant_id, name);

-- Each live domain's app goes to its tenant. Two tenants on one app name fail the UNIQUE above
-- (the upgrade check names them before it comes to that).
INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)
SELECT DISTINCT app, tenant_id, NULL, CAST(strftime('%s', 'now') AS REAL),
       CAST(strftime('%s', 'now') AS REAL)
FROM domains WHERE status != 'removed';

-- Pending and failed claims hold nobody back: a name is held by one tenant only once proven,
-- and each tenant has at most one live claim on a name.
DROP INDEX domains_live_hostname;
CREATE UNIQUE INDEX domains_held_hostname ON domains (hostname)
    WHERE status IN ('verified', 'active', 'expiring');
CREATE UNIQUE INDEX domains_tenant_claim ON domains (hostname, tenant_id)
    WHERE status != 'removed';

-- The attach rate limit counts a tenant's recent attaches; the purge finds old removals; an app's
-- change reaches the gate through its domains' change sequence.
CREATE INDEX domains_tenant_created ON domains (tenant_id, created_at);
CREATE INDEX domains_removed ON domains (removed_at) WHERE status = 'removed';
CREATE INDEX domains_app ON domains (app);

CREATE TRIGGER apps_seq_on_insert AFTER INSERT ON apps
BEGIN
    UPDATE domains SET seq = (SELECT max(seq) FROM domains) + 1 WHERE app = NEW.name;
END;

CREATE TRIGGER apps_seq_on_update AFTER UPDATE OF upstream, tenant_id, name ON apps
BEGIN
    UPDATE domains SET seq = (SELECT max(seq) FROM domains) + 1
    WHERE app IN (OLD.name, NEW.name);
END;

CREATE TRIGGER apps_seq_on_delete AFTER DELETE ON apps
BEGIN
    UPDATE domains SET seq = (SELECT max(seq) FROM domains) + 1 WHERE app = OLD.name;
END;
