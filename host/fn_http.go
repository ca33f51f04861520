package host

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
)

// The HTTP group: one request/response call, to hosts the manifest
// declares. The response reaches the guest framed as
// "<status>\n" + "Name: value\n"… + "\n" + body.

// HostAllowed reports whether u's host matches one of the allowed entries:
// "host", "host:port", or "*.domain" for any subdomain of domain. Without a
// port an entry allows any port.
func HostAllowed(allowed []string, u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	hostport := strings.ToLower(u.Host)
	if host == "" {
		return false
	}
	for _, a := range allowed {
		a = strings.ToLower(a)
		switch {
		case a == hostport, a == host:
			return true
		case strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:]):
			return true
		}
	}
	return false
}

// http_request(method, mlen, url, ulen, hdrs, hlen, body, blen, buf, cap) -> size.
func fnHTTPRequest(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	allowed := st.pool.mod.spec.Capabilities.HTTPHosts
	if len(allowed) == 0 {
		ret(stack, abi.ErrDenied)
		return
	}
	method, ok1 := memString(m, u32(stack, 0), u32(stack, 1), 32)
	rawURL, ok2 := memString(m, u32(stack, 2), u32(stack, 3), 8<<10)
	hdrs, ok3 := memString(m, u32(stack, 4), u32(stack, 5), 64<<10)
	body, ok4 := memRead(m, u32(stack, 6), u32(stack, 7))
	if !ok1 || !ok2 || !ok3 || !ok4 {
		ret(stack, abi.ErrInvalid)
		return
	}
	if method == "" {
		method = http.MethodGet
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		ret(stack, abi.ErrInvalid)
		return
	}
	if !HostAllowed(allowed, u) {
		st.pool.log.Warn("http host denied", "host", u.Host)
		ret(stack, abi.ErrDenied)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(append([]byte(nil), body...)))
	if err != nil {
		ret(stack, abi.ErrInvalid)
		return
	}
	for _, line := range strings.Split(hdrs, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) != "" {
			req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	client := st.pool.cfg.Env.HTTP
	if client == nil {
		client = st.pool.mod.rt.http
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			st.pool.log.Warn("http address denied", "host", u.Host, "err", err)
			ret(stack, abi.ErrDenied)
			return
		}
		ret(stack, errCode(ctx, err))
		return
	}
	defer resp.Body.Close()
	limit := st.pool.limits.MaxHTTPResponseBytes
	rb, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	if int64(len(rb)) > limit {
		ret(stack, abi.ErrTooLarge)
		return
	}
	var out bytes.Buffer
	out.WriteString(strconv.Itoa(resp.StatusCode))
	out.WriteByte('\n')
	for k, vs := range resp.Header {
		if len(vs) > 0 {
			out.WriteString(k + ": " + strings.ReplaceAll(vs[0], "\n", " ") + "\n")
		}
	}
	out.WriteByte('\n')
	out.Write(rb)
	ret(stack, st.putResult(m, u32(stack, 8), u32(stack, 9), out.Bytes()))
}
