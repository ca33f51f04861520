//go:build !wasip1

package guest

import (
	"unsafe"

	"github.com/vrsky/vrsky/abi"
)

// Outside wasip1 there is no host: every host function reports
// ErrUnavailable, so that packages using the SDK still build and vet on
// the developer's machine. Connectors are tested through the real host.

func hostInput(int32, unsafe.Pointer, uint32) int32 { return abi.ErrUnavailable }
func hostHeaderGet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	return abi.ErrUnavailable
}
func hostHeaderSet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	return abi.ErrUnavailable
}
func hostHeaderList(unsafe.Pointer, uint32) int32         { return abi.ErrUnavailable }
func hostEmit(unsafe.Pointer, uint32) int32               { return abi.ErrUnavailable }
func hostForward() int32                                  { return abi.ErrUnavailable }
func hostStatus(int32, unsafe.Pointer, uint32) int32      { return abi.ErrUnavailable }
func hostConfig(unsafe.Pointer, uint32) int32             { return abi.ErrUnavailable }
func hostLog(int32, unsafe.Pointer, uint32)               {}
func hostResult(unsafe.Pointer, uint32) int32             { return abi.ErrUnavailable }
func hostObjectOpen(unsafe.Pointer, uint32) int32         { return abi.ErrUnavailable }
func hostObjectCreate(unsafe.Pointer, uint32) int32       { return abi.ErrUnavailable }
func hostObjectRead(int32, unsafe.Pointer, uint32) int32  { return abi.ErrUnavailable }
func hostObjectWrite(int32, unsafe.Pointer, uint32) int32 { return abi.ErrUnavailable }
func hostObjectClose(int32) int32                         { return abi.ErrUnavailable }
func hostKVDelete(unsafe.Pointer, uint32) int32           { return abi.ErrUnavailable }
func hostNATSPublish(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	return abi.ErrUnavailable
}
func hostNATSRequest(unsafe.Pointer, uint32, unsafe.Pointer, uint32, uint32, unsafe.Pointer, uint32) int32 {
	return abi.ErrUnavailable
}
func hostKVGet(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return abi.ErrUnavailable }
func hostKVPut(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { return abi.ErrUnavailable }
func hostHTTPRequest(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 {
	return abi.ErrUnavailable
}

// Outside wasip1 nothing calls the batch loop (the host does, through the
// vrsky_process export); keep it referenced for vet and staticcheck.
var _ = processBatch
