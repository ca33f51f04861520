// Package abi holds the contract between the VRSky Wasm host and its guests,
// version 1: the import module name, the names of the exports a guest must
// have and of the functions the host offers, message statuses, error codes
// and log levels. ABI.md in this folder is the normative specification; this
// package only gives its names and numbers to Go code on both sides.
//
// It imports nothing, so that the host (package host) and the guest SDK
// (package abi/guest, compiled to wasip1) can both depend on it.
package abi

// Version is the ABI version this package describes.
const Version = 1

// ModuleName is the Wasm import module under which the host offers its
// functions to guests.
const ModuleName = "vrsky"

// Exports a guest must have.
const (
	// ExportMarker is a function of type () -> () whose presence declares
	// that the module speaks ABI v1. The host never calls it.
	ExportMarker = "vrsky_abi_v1"
	// ExportProcess is the entry point, of type (count i32) -> i32: process
	// the batch of count messages that the host holds for this call.
	ExportProcess = "vrsky_process"
	// ExportInitialize is the WASI reactor initialiser (Go c-shared builds
	// have it). When present the host calls it once per instance.
	ExportInitialize = "_initialize"
	// ExportMemory is the guest's linear memory, which must be exported.
	ExportMemory = "memory"
)

// Functions the host offers in module "vrsky". Pointers and lengths are
// i32 unless said otherwise; see ABI.md for the full table.
const (
	FnInput        = "input"         // (index, buf, cap) -> size|err
	FnHeaderGet    = "header_get"    // (name, name_len, buf, cap) -> size|err
	FnHeaderSet    = "header_set"    // (name, name_len, val, val_len) -> err
	FnHeaderList   = "header_list"   // (buf, cap) -> size|err
	FnEmit         = "emit"          // (buf, len) -> err
	FnForward      = "forward"       // () -> err
	FnStatus       = "status"        // (code, msg, msg_len) -> err
	FnConfig       = "config"        // (buf, cap) -> size|err
	FnLog          = "log"           // (level, msg, msg_len) -> ()
	FnResult       = "result"        // (buf, cap) -> size|err
	FnNATSPublish  = "nats_publish"  // (subj, subj_len, data, data_len) -> err
	FnNATSRequest  = "nats_request"  // (subj, subj_len, data, data_len, timeout_ms, buf, cap) -> size|err
	FnObjectOpen   = "object_open"   // (key, key_len) -> handle|err
	FnObjectCreate = "object_create" // (key, key_len) -> handle|err
	FnObjectRead   = "object_read"   // (handle, buf, cap) -> n|err
	FnObjectWrite  = "object_write"  // (handle, buf, len) -> err
	FnObjectClose  = "object_close"  // (handle) -> err
	FnKVGet        = "kv_get"        // (key, key_len, buf, cap) -> size|err
	FnKVPut        = "kv_put"        // (key, key_len, val, val_len) -> err
	FnKVDelete     = "kv_delete"     // (key, key_len) -> err
	FnHTTPRequest  = "http_request"  // (method, mlen, url, ulen, hdrs, hlen, body, blen, buf, cap) -> size|err
)

// SubjectAppToken is the token after the tenant that opens the guests'
// own NATS namespace, "vrsky.<tenant>._app.>" (ABI.md §5): no integration
// can be named so (integration names are DNS labels), and the platform
// never uses it, so no stream of the platform captures those subjects.
const SubjectAppToken = "_app"

// Status is the outcome of one message of a batch, set by the guest with
// the "status" host function. A message whose status is never set is OK.
type Status int32

// Message statuses.
const (
	// StatusOK: the message was handled; its outputs are what the guest
	// emitted or forwarded for it (possibly none).
	StatusOK Status = 0
	// StatusDrop: the message is filtered out; outputs are discarded.
	StatusDrop Status = 1
	// StatusRetryable: a transient failure; the message is retried later.
	StatusRetryable Status = 2
	// StatusPermanent: the message can never succeed (malformed input);
	// it goes to the dead-letter queue without retries.
	StatusPermanent Status = 3
)

// String names the status.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusDrop:
		return "drop"
	case StatusRetryable:
		return "retryable"
	case StatusPermanent:
		return "permanent"
	}
	return "unknown"
}

// Error codes: negative i32 results of host functions. Zero or a positive
// value means success (a size, a count or a handle).
const (
	// ErrNotFound: no such header, key or object.
	ErrNotFound int32 = -1
	// ErrDenied: the capability is not granted, or the subject, key or
	// host is outside what this module may touch.
	ErrDenied int32 = -2
	// ErrInvalid: a pointer or length outside guest memory, a bad
	// argument, or a call made outside a message.
	ErrInvalid int32 = -3
	// ErrTooLarge: an output, value or response exceeds its limit, or a
	// call's budget (outputs, header_set) is spent; a budget also fails
	// the message (ABI.md §4.1).
	ErrTooLarge int32 = -4
	// ErrUnavailable: the backend failed; retrying later may succeed.
	ErrUnavailable int32 = -5
	// ErrTimeout: the operation did not finish in time.
	ErrTimeout int32 = -6
	// ErrBadHandle: no open object under that handle.
	ErrBadHandle int32 = -7
)

// ErrorName returns the short name of an error code, for messages.
func ErrorName(code int32) string {
	switch code {
	case ErrNotFound:
		return "not found"
	case ErrDenied:
		return "denied"
	case ErrInvalid:
		return "invalid argument"
	case ErrTooLarge:
		return "too large"
	case ErrUnavailable:
		return "unavailable"
	case ErrTimeout:
		return "timeout"
	case ErrBadHandle:
		return "bad handle"
	}
	return "unknown error"
}

// Log levels for the "log" host function.
const (
	LogDebug int32 = 0
	LogInfo  int32 = 1
	LogWarn  int32 = 2
	LogError int32 = 3
)

// WASIModule is the WASI import module name.
const WASIModule = "wasi_snapshot_preview1"

// AllowedWASI lists the WASI functions a guest may import. They cover what
// the Go wasip1 runtime links (clocks, random, stdout/stderr, process exit,
// yield) and nothing that reaches files, directories or sockets: the host
// preopens no directory, so fd_prestat_* only ever report "none".
var AllowedWASI = map[string]bool{
	"args_get":            true,
	"args_sizes_get":      true,
	"environ_get":         true,
	"environ_sizes_get":   true,
	"clock_res_get":       true,
	"clock_time_get":      true,
	"random_get":          true,
	"poll_oneoff":         true,
	"sched_yield":         true,
	"proc_exit":           true,
	"fd_read":             true, // stdin only, which is always empty
	"fd_write":            true, // stdout and stderr, sent to the log
	"fd_close":            true,
	"fd_fdstat_get":       true,
	"fd_fdstat_set_flags": true,
	"fd_prestat_get":      true,
	"fd_prestat_dir_name": true,
}

// ExtismEnvModule is the import module of the Extism kernel. A module that
// imports it is run through the Extism path (see ABI.md, "Extism").
const ExtismEnvModule = "extism:host/env"

// ExtismUserModule is the import module under which the host offers VRSky's
// capabilities to Extism plugins.
const ExtismUserModule = "extism:host/user"
