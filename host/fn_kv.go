package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
)

// The KV group: get, put and delete in a key space scoped to the
// integration ("<tenant>.<integration>.<key>").

const maxKVValue = 1 << 20

// kvKeyValid accepts 1..256 characters of [A-Za-z0-9_=/.-], without
// leading, trailing or doubled dots.
func kvKeyValid(k string) bool {
	if k == "" || len(k) > 256 || k[0] == '.' || k[len(k)-1] == '.' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '=', c == '/', c == '-':
		case c == '.':
			if k[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (st *callState) kvKey(m api.Module, stack []uint64) (KV, string, int32) {
	if !st.pool.mod.spec.Capabilities.KV {
		return nil, "", abi.ErrDenied
	}
	key, ok := memString(m, u32(stack, 0), u32(stack, 1), maxNameLen)
	if !ok || !kvKeyValid(key) {
		return nil, "", abi.ErrInvalid
	}
	kv := st.pool.cfg.Env.KV
	if kv == nil {
		return nil, "", abi.ErrUnavailable
	}
	return kv, st.pool.cfg.Tenant + "." + st.pool.cfg.Integration + "." + key, 0
}

// kv_get(key, key_len, buf, cap) -> size | ErrNotFound.
func fnKVGet(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	kv, key, code := st.kvKey(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	v, err := kv.Get(ctx, key)
	if err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, st.putResult(m, u32(stack, 2), u32(stack, 3), v))
}

// kv_put(key, key_len, val, val_len).
func fnKVPut(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	kv, key, code := st.kvKey(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	if u32(stack, 3) > maxKVValue {
		ret(stack, abi.ErrTooLarge)
		return
	}
	v, ok := memRead(m, u32(stack, 2), u32(stack, 3))
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	if err := kv.Put(ctx, key, append([]byte(nil), v...)); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

// kv_delete(key, key_len).
func fnKVDelete(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	kv, key, code := st.kvKey(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	if err := kv.Delete(ctx, key); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}
