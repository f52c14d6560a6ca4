package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// Domains lists every domain libvirt knows, active or inactive, with its
// current state. It fails as a whole rather than return a partial list: a
// missing domain would look like a stopped one. While disconnected it
// returns ErrNotConnected.
//
// It reads all states in one RPC (virConnectGetAllDomainStats); a paused
// domain whose migration direction is unknown costs one more (its job
// stats). If the driver lacks that call, it lists the domains and reads
// their states one by one, and then leaves out a domain that disappears
// while it is being read.
func (a *Adapter) Domains(ctx context.Context) ([]reconcile.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	s := a.sess
	if s == nil {
		return nil, ErrNotConnected
	}
	if s.oneByOne.Load() {
		return a.domainsOneByOne(ctx, s)
	}

	read := a.readStates
	if read == nil {
		read = readAllStates
	}
	var out []reconcile.Domain
	err := read(s.conn, func(r stateRecord) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		uuid := strings.ToLower(r.uuid)
		d := reconcile.Domain{
			Name:   r.name,
			UUID:   uuid,
			State:  mapState(r.state),
			Reason: stateReason(r.state, r.reason),
		}
		switch d.State {
		case reconcile.StatePaused:
			d.Migration = a.migrationRole(uuid, lv.DomainPausedReason(r.reason), r.jobOperation)
		case reconcile.StateRunning:
			d.Migration = a.leavingRole(uuid, r.name, r.jobOperation)
		}
		claims, _, err := a.meta.claims(uuid, r.name, r.state, true, a.meta.counted(r.metadata), a.meta.counted(r.configMetadata))
		if err != nil {
			return err
		}
		d.Claims = claims
		out = append(out, d)
		return nil
	})
	switch {
	case err == nil:
		if out == nil {
			out = []reconcile.Domain{}
		}
		a.pruneMeta(out)
		s.pruneHandles(uuids(out))
		return out, nil
	case errors.Is(err, lv.ERR_NO_SUPPORT):
		s.oneByOne.Store(true)
		a.log.Info("libvirt driver cannot read all domain states at once; reading them one by one", "error", err)
		return a.domainsOneByOne(ctx, s)
	case errors.Is(err, errNoStateStats):
		return a.domainsOneByOne(ctx, s)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return nil, err
	}
	var lerr lv.Error
	if errors.As(err, &lerr) {
		return nil, a.callFailed(s, "read domain states", err)
	}
	return nil, fmt.Errorf("libvirt: read domain states: %w", err)
}

// domainsOneByOne is Domains for a driver without
// virConnectGetAllDomainStats: one RPC to list the domains and one per
// domain for its state. The caller holds a.mu shared.
func (a *Adapter) domainsOneByOne(ctx context.Context, s *session) ([]reconcile.Domain, error) {
	doms, err := s.conn.ListAllDomains(0)
	if err != nil {
		return nil, a.callFailed(s, "list domains", err)
	}
	// Free every domain object exactly once, whatever happens below.
	defer func() {
		for i := range doms {
			_ = doms[i].Free()
		}
	}()

	out := make([]reconcile.Domain, 0, len(doms))
	for i := range doms {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, found, err := a.readDomain(s, &doms[i], true)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, d)
		}
	}
	a.pruneMeta(out)
	s.pruneHandles(uuids(out))
	return out, nil
}

// uuids is the set of the UUIDs of ds.
func uuids(ds []reconcile.Domain) map[string]bool {
	m := make(map[string]bool, len(ds))
	for _, d := range ds {
		m[d.UUID] = true
	}
	return m
}

// pruneMeta forgets the metadata of the domains that are not in a full
// list.
func (a *Adapter) pruneMeta(ds []reconcile.Domain) {
	if a.meta == nil {
		return
	}
	keep := make(map[string]bool, len(ds))
	for _, d := range ds {
		keep[d.UUID] = true
	}
	a.meta.prune(keep)
}

// Domain reads one domain by UUID (any case). found is false, with a nil
// error, if libvirt does not know it. While disconnected it returns
// ErrNotConnected.
func (a *Adapter) Domain(ctx context.Context, uuid string) (reconcile.Domain, bool, error) {
	if err := ctx.Err(); err != nil {
		return reconcile.Domain{}, false, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	s := a.sess
	if s == nil {
		return reconcile.Domain{}, false, ErrNotConnected
	}

	dom, err := a.domainObject(s, uuid)
	if err != nil {
		if errors.Is(err, lv.ERR_NO_DOMAIN) {
			return reconcile.Domain{}, false, nil
		}
		return reconcile.Domain{}, false, a.callFailed(s, "look up domain "+uuid, err)
	}
	defer func() { _ = dom.Free() }()
	return a.readDomain(s, dom, false)
}

// domainObject returns a domain object (to be freed) for uuid: the one its
// last lifecycle event carried (no RPC), else one looked up (counted in
// Lookups). The caller holds a.mu shared.
func (a *Adapter) domainObject(s *session, uuid string) (*lv.Domain, error) {
	if dom := s.handle(strings.ToLower(uuid)); dom != nil {
		return dom, nil
	}
	a.lookups.Add(1)
	return s.conn.LookupDomainByUUIDString(uuid)
}

// readDomain reads name, UUID and state of dom, and the claims of its
// metadata (from the cache unless force or stale). It does not free dom.
// found is false if the domain vanished meanwhile.
func (a *Adapter) readDomain(s *session, dom *lv.Domain, force bool) (reconcile.Domain, bool, error) {
	// Name and UUID are held in the domain object: no RPC.
	uuid, err := dom.GetUUIDString()
	if err != nil {
		return reconcile.Domain{}, false, fmt.Errorf("libvirt: read domain UUID: %w", err)
	}
	uuid = strings.ToLower(uuid)
	name, err := dom.GetName()
	if err != nil {
		return reconcile.Domain{}, false, fmt.Errorf("libvirt: read name of domain %s: %w", uuid, err)
	}
	read := func(flags lv.DomainModificationImpact) getMetadataFunc {
		return a.meta.counted(func(ns string) (string, error) {
			return dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, ns, flags)
		})
	}
	live, config := read(lv.DOMAIN_AFFECT_LIVE), read(lv.DOMAIN_AFFECT_CONFIG)
	if !force {
		// After an event that can change the metadata (a start, a stop,
		// an incoming migration, an edit), read it beside the state, not
		// after.
		var wait func()
		switch readLive, readConfig := a.meta.willRead(uuid, name); {
		case readLive:
			live, wait = a.meta.prefetch(live)
			defer wait()
		case readConfig:
			config, wait = a.meta.prefetch(config)
			defer wait()
		}
	}
	st, reason, err := dom.GetState()
	if err != nil {
		if errors.Is(err, lv.ERR_NO_DOMAIN) {
			return reconcile.Domain{}, false, nil
		}
		return reconcile.Domain{}, false, a.callFailed(s, fmt.Sprintf("read state of domain %s (%s)", name, uuid), err)
	}
	d := reconcile.Domain{
		Name:   name,
		UUID:   uuid,
		State:  mapState(st),
		Reason: stateReason(st, reason),
	}
	jobOperation := func() (lv.DomainJobOperationType, bool) {
		job, err := dom.GetJobStats(0)
		if err != nil || !job.OperationSet {
			return 0, false
		}
		return job.Operation, true
	}
	switch d.State {
	case reconcile.StatePaused:
		d.Migration = a.migrationRole(uuid, lv.DomainPausedReason(reason), jobOperation)
	case reconcile.StateRunning:
		d.Migration = a.leavingRole(uuid, name, jobOperation)
	}
	claims, verify, err := a.meta.claims(uuid, name, st, force, live, config)
	if err != nil {
		return reconcile.Domain{}, false, a.callFailed(s, fmt.Sprintf("read metadata of domain %s (%s)", name, uuid), err)
	}
	if verify {
		// Taken from the persistent definition at its boot: the next
		// pass reads the live one.
		a.offer(reconcile.Hint{UUID: uuid, Name: name, Event: "Metadata Verify"})
	}
	d.Claims = claims
	return d, true, nil
}

// migrationRole tells a paused domain's part in a migration. The
// destination of an incoming migration is known from its Started Migrated
// event; when virtbgp did not see that event (it started or reconnected
// during the migration), the migration job's operation, read by
// jobOperation (an RPC, made only for a pause of a migration), tells the
// direction.
func (a *Adapter) migrationRole(uuid string, reason lv.DomainPausedReason, jobOperation func() (lv.DomainJobOperationType, bool)) reconcile.Migration {
	if reason == lv.DOMAIN_PAUSED_POSTCOPY_FAILED {
		return reconcile.MigrationFailed
	}
	if a.incomingMigration(uuid) {
		return reconcile.MigrationIncoming
	}
	// The source pauses for the pre-copy switch-over (migration) or in
	// post-copy (postcopy): either way the guest is about to run at the
	// destination.
	if reason != lv.DOMAIN_PAUSED_MIGRATION && reason != lv.DOMAIN_PAUSED_POSTCOPY {
		return reconcile.MigrationNone
	}
	if op, ok := jobOperation(); ok && op == lv.DOMAIN_JOB_OPERATION_MIGRATION_IN {
		return reconcile.MigrationIncoming
	}
	return reconcile.MigrationOutgoing
}

// callFailed wraps the error of a failed libvirt call. If the connection is
// no longer alive it marks the session dead, which makes Run reconnect, and
// the returned error also matches ErrNotConnected.
func (a *Adapter) callFailed(s *session, what string, err error) error {
	alive, aerr := s.conn.IsAlive()
	if aerr != nil || !alive {
		s.markDead(fmt.Sprintf("%s failed on a dead connection: %v", what, err))
		return fmt.Errorf("%w: %s: %w", ErrNotConnected, what, err)
	}
	return fmt.Errorf("libvirt: %s: %w", what, err)
}

// Lookups returns how many domain lookups (one RPC each) Domain made
// because no event had given it the domain's object, for tests.
func (a *Adapter) Lookups() uint64 { return a.lookups.Load() }
