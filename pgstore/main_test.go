package pgstore_test

import (
	"testing"

	"github.com/pgevent/es/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.MainCheckingLeaks(m) }
