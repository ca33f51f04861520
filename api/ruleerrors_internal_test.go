package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/vrsky/vrsky/registry"
)

// TestRegistryRuleStatuses: the API, not the registry, says what each
// upload rule answers; the answer keeps the rule's field and reason.
func TestRegistryRuleStatuses(t *testing.T) {
	tests := []struct {
		rule   string
		status int
		code   Code
	}{
		{registry.RuleManifest, http.StatusBadRequest, CodeBadRequest},
		{registry.RuleLimits, http.StatusBadRequest, CodeBadRequest},
		{registry.RuleCompile, http.StatusBadRequest, CodeBadRequest},
		{registry.RuleCompileBounds, http.StatusUnprocessableEntity, CodeUnprocessable},
		{registry.RuleSize, http.StatusRequestEntityTooLarge, CodeBodyTooLarge},
		{registry.RuleName, http.StatusConflict, CodeConflict},
		{registry.RuleVersion, http.StatusConflict, CodeAlreadyExists},
		{registry.RuleSignature, http.StatusBadRequest, CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			ref := &registry.Refusal{Rule: tc.rule, Field: "module", Reason: "why"}
			var e *Error
			if !errors.As(registryError(fmt.Errorf("publish: %w", ref)), &e) {
				t.Fatal("not an *Error")
			}
			if e.Status != tc.status || e.Code != tc.code || e.Field != "module" || e.Message != ref.Error() {
				t.Errorf("got %d %s %q %q, want %d %s", e.Status, e.Code, e.Field, e.Message, tc.status, tc.code)
			}
		})
	}
}
