package array

import "testing"

func TestPageMapOwners(t *testing.T) {
	pm := PageMap{PageSize: 1 << 20, Size: 5<<20 + 512, Members: []int{1, 2}}
	if pm.Pages() != 6 {
		t.Fatalf("Pages() = %d; want 6 (a partial page counts)", pm.Pages())
	}
	for page, want := range []int{1, 2, 1, 2, 1, 2} {
		if got := pm.Owner(int64(page)); got != want {
			t.Errorf("Owner(%d) = %d; want %d", page, got, want)
		}
	}
	if got := pm.PagesPerMember(); got[1] != 3 || got[2] != 3 {
		t.Errorf("PagesPerMember() = %v", got)
	}
	three := PageMap{PageSize: 1 << 20, Size: 7 << 20, Members: []int{1, 2, 3}}
	if got := three.PagesPerMember(); got[1] != 3 || got[2] != 2 || got[3] != 2 {
		t.Errorf("PagesPerMember() over 3 members = %v", got)
	}
}

func TestPageMapSplit(t *testing.T) {
	pm := PageMap{PageSize: 4096, Size: 1 << 20, Members: []int{1, 2, 3}}
	var got []Extent
	pm.Split(4000, 8300, func(e Extent) error { got = append(got, e); return nil })
	want := []Extent{{0, 1, 4000, 96}, {1, 2, 4096, 4096}, {2, 3, 8192, 4096}, {3, 1, 12288, 12}}
	if len(got) != len(want) {
		t.Fatalf("Split = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("extent %d = %+v; want %+v", i, got[i], want[i])
		}
	}
}

func TestPageMapForeign(t *testing.T) {
	pm := PageMap{PageSize: 4096, Size: 1 << 30, Members: []int{1, 2, 3}}
	brute := func(member int, off, n int64) int64 {
		var c int64
		for p := off / 4096; p <= (off+n-1)/4096; p++ {
			if pm.Owner(p) != member {
				c++
			}
		}
		return c
	}
	for _, c := range []struct{ off, n int64 }{{0, 1}, {0, 4096}, {4095, 2}, {0, 3 * 4096}, {100, 40000}, {12288, 1 << 20}} {
		for m := 1; m <= 4; m++ {
			if got, want := pm.Foreign(m, c.off, c.n), brute(m, c.off, c.n); got != want {
				t.Errorf("Foreign(%d, %d, %d) = %d; want %d", m, c.off, c.n, got, want)
			}
		}
	}
	if pm.Foreign(1, 0, 0) != 0 {
		t.Error("an empty range has foreign pages")
	}
}
