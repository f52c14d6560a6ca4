package libvirt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/virtbgp/virtbgp/internal/health"
)

var _ health.Agent = (*Adapter)(nil)

// WithAgentEvents makes the adapter register libvirt's guest agent
// lifecycle event (VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE) and call fn with the
// domain's UUID when a guest agent connects or disconnects: a hint for the
// agent checks (health.Monitor.AgentEvent). fn runs on libvirt's event loop
// and must not block.
func WithAgentEvents(fn func(uuid string)) Option {
	return func(a *Adapter) { a.agentEvent = fn }
}

// onAgentLifecycle is the agent lifecycle callback, on libvirt's event loop.
func (a *Adapter) onAgentLifecycle(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventAgentLifecycle) {
	uuid, err := d.GetUUIDString()
	if err != nil {
		return
	}
	name, _ := d.GetName()
	a.log.Debug("guest agent event", "domain", name, "uuid", uuid,
		"connected", ev.State == lv.CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED)
	a.agentEvent(uuid)
}

// guestPing is the guest agent command of the agent check.
const guestPing = `{"execute":"guest-ping"}`

// AgentPing sends guest-ping to the guest agent of the domain with this
// UUID (virDomainQemuAgentCommand) and waits for the answer, at most
// timeout (libvirt counts whole seconds, so the wait ends at ctx's
// deadline if that is sooner). A domain without a guest agent channel, one
// that is not running or not found, a driver without agent support and a
// lost libvirt connection give an error wrapping health.ErrCannotRun; an
// agent that does not answer is a failure.
func (a *Adapter) AgentPing(ctx context.Context, uuid string, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- a.agentPing(uuid, timeout) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Adapter) agentPing(uuid string, timeout time.Duration) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	s := a.sess
	if s == nil {
		return fmt.Errorf("%w: %w", health.ErrCannotRun, ErrNotConnected)
	}
	dom, err := a.domainObject(s, uuid)
	if err != nil {
		return fmt.Errorf("%w: look up domain: %w", health.ErrCannotRun, err)
	}
	defer func() { _ = dom.Free() }()
	secs := lv.DomainQemuAgentCommandTimeout(max(1, int(math.Ceil(timeout.Seconds()))))
	_, err = dom.QemuAgentCommand(guestPing, secs, 0)
	if err == nil {
		return nil
	}
	var le lv.Error
	if errors.As(err, &le) {
		switch le.Code {
		case lv.ERR_AGENT_UNRESPONSIVE, lv.ERR_AGENT_UNSYNCED, lv.ERR_AGENT_COMMAND_TIMEOUT, lv.ERR_AGENT_COMMAND_FAILED:
			return errors.New(le.Message)
		}
		return fmt.Errorf("%w: %s", health.ErrCannotRun, le.Message)
	}
	return fmt.Errorf("%w: %w", health.ErrCannotRun, err)
}
