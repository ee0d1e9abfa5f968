package api

import "testing"

// The cache hands a name out once and starts over past its bound.
func TestStepNames(t *testing.T) {
	t.Parallel()
	var c stepNames
	c.put("s1", 1, "r1", "build")
	if n, ok := c.take("s1", 2); ok {
		t.Errorf("another attempt found %+v", n)
	}
	if n, ok := c.take("s1", 1); !ok || n != (stepName{"r1", "build"}) {
		t.Errorf("take = %+v, %v", n, ok)
	}
	if _, ok := c.take("s1", 1); ok {
		t.Error("taken twice")
	}
	for i := 0; i < maxMaskers+1; i++ {
		c.put("s", i, "r", "n")
	}
	if len(c.m) > maxMaskers {
		t.Errorf("%d entries, bound %d", len(c.m), maxMaskers)
	}
}
