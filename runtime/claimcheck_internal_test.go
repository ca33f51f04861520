package runtime

import (
	"testing"
)

// A step's output may name a payload object only if the step works by
// reference, and only one of its own tenant's; an output with a payload of
// its own sheds the reference it inherited.
func TestCheckOutputRef(t *testing.T) {
	claimed := func(ref string, data string) *Message {
		h := Header{}
		h.Set(HeaderMsgID, "m1")
		if ref != "" {
			h.Set(HeaderPayloadRef, ref)
			h.Set(HeaderPayloadSize, "300000")
			h.Set(HeaderPayloadSHA256, "ab")
		}
		return &Message{ID: "m1", Header: h, Data: []byte(data)}
	}
	const own = "payloads/acme/orders/m1"
	for _, tc := range []struct {
		name      string
		in, out   *Message
		byRef     bool
		permanent bool
		keepsRef  bool
	}{
		{name: "no reference", in: claimed("", "x"), out: claimed("", "y"), byRef: false},
		{name: "passed through by reference", in: claimed(own, ""), out: claimed(own, ""), byRef: true, keepsRef: true},
		{name: "inherited reference, new payload", in: claimed(own, ""), out: claimed(own, "small"), byRef: true},
		{name: "new object of the tenant", in: claimed(own, ""), out: claimed(own+".o0", ""), byRef: true, keepsRef: true},
		{name: "another tenant's object", in: claimed(own, ""), out: claimed("payloads/other/orders/m1", ""), byRef: true, permanent: true},
		{name: "tenant name as a prefix only", in: claimed(own, ""), out: claimed("payloads/acme-evil/x/m1", ""), byRef: true, permanent: true},
		{name: "a module object, not a payload", in: claimed(own, ""), out: claimed("modules/acme/x", ""), byRef: true, permanent: true},
		{name: "forged by a step without objects", in: claimed("", "x"), out: claimed(own, ""), byRef: false, permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipeline{tenant: "acme"}
			inHeader := tc.out.Header
			err := p.checkOutputRef(tc.in, tc.out, tc.byRef)
			if got := IsPermanent(err); got != tc.permanent || (err != nil && !tc.permanent) {
				t.Fatalf("err = %v, want permanent %v", err, tc.permanent)
			}
			if err != nil {
				return
			}
			if has := tc.out.Claimed(); has != tc.keepsRef {
				t.Fatalf("output keeps its reference: %v, want %v", has, tc.keepsRef)
			}
			if !tc.keepsRef && tc.in.Claimed() && inHeader.Get(HeaderPayloadRef) == "" {
				t.Fatal("the shared header map was changed in place")
			}
		})
	}
}
