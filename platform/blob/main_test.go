package blob_test

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
