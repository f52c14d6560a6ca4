package status_test

import (
	"github.com/virtbgp/virtbgp/internal/reconcile"
	"github.com/virtbgp/virtbgp/internal/status"
)

// Metrics is what the daemon gives the reconciler as its Observer. (In an
// external test package, so that reconcile may import status.)
var _ reconcile.Observer = (*status.Metrics)(nil)
