package memory_test

import (
	"testing"

	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/store/storetest"
)

func TestMemory_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	}, storetest.Features{})
}
