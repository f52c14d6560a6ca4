package libvirt

/*
#cgo pkg-config: libvirt
#include <stdlib.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

// libvirt keeps the last error per OS thread, and Go may move a goroutine
// to another thread between two cgo calls: every helper copies the error
// in the call that failed.

static int vbgpAllStates(virConnectPtr conn, virDomainStatsRecordPtr **recs, virErrorPtr err) {
	int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, recs, 0);
	if (n < 0)
		virCopyLastError(err);
	return n;
}

// Keys of the state group (documented at virConnectGetAllDomainStats; no
// macros for them before libvirt 11).
typedef struct {
	const char *name; // owned by the domain object
	char uuid[VIR_UUID_STRING_BUFLEN];
	int state, stateSet;
	int reason, reasonSet;
} vbgpRecord;

// vbgpRead fills out from recs[i]: no RPC, the name and UUID are held in
// the domain object and the state in the record.
static int vbgpRead(virDomainStatsRecordPtr *recs, int i, vbgpRecord *out, virErrorPtr err) {
	virDomainStatsRecordPtr r = recs[i];
	memset(out, 0, sizeof(*out));
	out->name = virDomainGetName(r->dom);
	if (out->name == NULL || virDomainGetUUIDString(r->dom, out->uuid) < 0) {
		virCopyLastError(err);
		return -1;
	}
	out->stateSet = virTypedParamsGetInt(r->params, r->nparams, "state.state", &out->state) == 1;
	out->reasonSet = virTypedParamsGetInt(r->params, r->nparams, "state.reason", &out->reason) == 1;
	return 0;
}

// vbgpJobOperation reads the operation of the domain's current job (one
// RPC): 1 and *op if known, 0 if not (no job, no operation, or an error).
static int vbgpJobOperation(virDomainStatsRecordPtr *recs, int i, int *op) {
	int type = 0, n = 0, found;
	virTypedParameterPtr params = NULL;
	if (virDomainGetJobStats(recs[i]->dom, &type, &params, &n, 0) < 0) {
		virResetLastError();
		return 0;
	}
	found = virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, op) == 1;
	virTypedParamsFree(params, n);
	return found;
}

// vbgpMetadata reads an element of the live or persistent (flags)
// metadata of the domain of recs[i] by namespace (one RPC): the element,
// to be freed, or NULL and the error.
static char *vbgpMetadata(virDomainStatsRecordPtr *recs, int i, const char *uri, unsigned int flags, virErrorPtr err) {
	char *s = virDomainGetMetadata(recs[i]->dom, VIR_DOMAIN_METADATA_ELEMENT, uri, flags);
	if (s == NULL)
		virCopyLastError(err);
	return s;
}
*/
import "C"

import (
	"errors"
	"unsafe"

	lv "libvirt.org/go/libvirt"
)

// stateRecord is one domain of a bulk state read. jobOperation reads the
// operation of the domain's current job, an RPC; it is valid only during
// the callback that gets the record.
type stateRecord struct {
	name, uuid   string
	state        lv.DomainState
	reason       int
	jobOperation func() (lv.DomainJobOperationType, bool)
	// metadata and configMetadata read an element of the domain's live
	// or persistent metadata by namespace, an RPC; valid only during the
	// callback, like jobOperation.
	metadata, configMetadata getMetadataFunc
}

// errNoStateStats means a record of a bulk read lacks the state: the driver
// answered virConnectGetAllDomainStats without the state group.
var errNoStateStats = errors.New("domain stats lack the state")

// readAllStates reads the state of every domain, active or inactive, in
// one RPC (virConnectGetAllDomainStats with VIR_DOMAIN_STATS_STATE) and
// calls each for every domain, stopping at its first error. The error of
// the RPC is an lv.Error (VIR_ERR_NO_SUPPORT if the driver lacks the call).
// The domain objects of the answer are released, each once, when it
// returns.
//
// libvirt-go's Connect.GetAllDomainStats is not used: it makes one more RPC
// per domain (virDomainGetVcpusFlags, for the dirty rate group) whatever
// groups are asked for, which costs more than the one GetState per domain
// it is meant to replace.
func readAllStates(conn *lv.Connect, each func(stateRecord) error) error {
	raw, err := conn.RawPtr() // takes a reference: no RPC
	if err != nil {
		return err
	}
	defer func() { _, _ = lv.CloseRawPtr(raw) }() // drops it: no RPC
	cconn := C.virConnectPtr(unsafe.Pointer(raw))

	var recs *C.virDomainStatsRecordPtr
	var cerr C.virError
	n := C.vbgpAllStates(cconn, &recs, &cerr)
	if n < 0 {
		return lvError(&cerr)
	}
	// Frees every record and releases its domain object.
	defer C.virDomainStatsRecordListFree(recs)

	for i := C.int(0); i < n; i++ {
		var r C.vbgpRecord
		if C.vbgpRead(recs, i, &r, &cerr) < 0 {
			return lvError(&cerr)
		}
		if r.stateSet == 0 {
			return errNoStateStats
		}
		rec := stateRecord{
			name:  C.GoString(r.name),
			uuid:  C.GoString(&r.uuid[0]),
			state: lv.DomainState(r.state),
		}
		if r.reasonSet != 0 {
			rec.reason = int(r.reason)
		}
		rec.jobOperation = func() (lv.DomainJobOperationType, bool) {
			var op C.int
			if C.vbgpJobOperation(recs, i, &op) != 1 {
				return 0, false
			}
			return lv.DomainJobOperationType(op), true
		}
		metadata := func(flags C.uint) getMetadataFunc {
			return func(ns string) (string, error) {
				cns := C.CString(ns)
				defer C.free(unsafe.Pointer(cns))
				var merr C.virError
				out := C.vbgpMetadata(recs, i, cns, flags, &merr)
				if out == nil {
					return "", lvError(&merr)
				}
				defer C.free(unsafe.Pointer(out))
				return C.GoString(out), nil
			}
		}
		rec.metadata = metadata(C.VIR_DOMAIN_AFFECT_LIVE)
		rec.configMetadata = metadata(C.VIR_DOMAIN_AFFECT_CONFIG)
		if err := each(rec); err != nil {
			return err
		}
	}
	return nil
}

// lvError converts a copied libvirt error to the lv.Error libvirt-go
// returns, so that errors.Is(err, lv.ERR_...) works, and frees its strings.
func lvError(e *C.virError) error {
	err := lv.Error{
		Code:   lv.ErrorNumber(e.code),
		Domain: lv.ErrorDomain(e.domain),
		Level:  lv.ErrorLevel(e.level),
	}
	if e.message != nil {
		err.Message = C.GoString(e.message)
	}
	C.virResetError(e)
	if err.Code == lv.ERR_OK {
		err.Code = lv.ERR_INTERNAL_ERROR
		err.Message = "libvirt call failed without an error"
	}
	return err
}
