//go:build wasip1

package guest

import "unsafe"

// The host functions of ABI v1 (module "vrsky"); see abi/ABI.md.

//go:wasmimport vrsky input
func hostInput(index int32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky header_get
func hostHeaderGet(name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky header_set
func hostHeaderSet(name unsafe.Pointer, nameLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport vrsky header_list
func hostHeaderList(buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky emit
func hostEmit(buf unsafe.Pointer, n uint32) int32

//go:wasmimport vrsky forward
func hostForward() int32

//go:wasmimport vrsky status
func hostStatus(code int32, msg unsafe.Pointer, msgLen uint32) int32

//go:wasmimport vrsky config
func hostConfig(buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky log
func hostLog(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport vrsky result
func hostResult(buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky nats_publish
func hostNATSPublish(subj unsafe.Pointer, subjLen uint32, data unsafe.Pointer, dataLen uint32) int32

//go:wasmimport vrsky nats_request
func hostNATSRequest(subj unsafe.Pointer, subjLen uint32, data unsafe.Pointer, dataLen uint32, timeoutMS uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky object_open
func hostObjectOpen(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport vrsky object_create
func hostObjectCreate(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport vrsky object_read
func hostObjectRead(h int32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky object_write
func hostObjectWrite(h int32, buf unsafe.Pointer, n uint32) int32

//go:wasmimport vrsky object_close
func hostObjectClose(h int32) int32

//go:wasmimport vrsky kv_get
func hostKVGet(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmimport vrsky kv_put
func hostKVPut(key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport vrsky kv_delete
func hostKVDelete(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport vrsky http_request
func hostHTTPRequest(method unsafe.Pointer, methodLen uint32, url unsafe.Pointer, urlLen uint32, hdrs unsafe.Pointer, hdrsLen uint32, body unsafe.Pointer, bodyLen uint32, buf unsafe.Pointer, cap uint32) int32

//go:wasmexport vrsky_abi_v1
func abiV1() {}

//go:wasmexport vrsky_process
func vrskyProcess(count int32) int32 { return processBatch(count) }
