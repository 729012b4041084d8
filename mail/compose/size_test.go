package compose

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// sizeByFloat is how sizes were written before labels.size went to
// integers: the reference it must still match.
func sizeByFloat(l labels, n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d %s", n, l.Units[0])
	}
	v := float64(n) / 1024
	u := 1
	for v >= 1024 && u < len(l.Units)-1 {
		v /= 1024
		u++
	}
	return strings.Replace(fmt.Sprintf("%.1f", v), ".", l.DecimalSep, 1) + " " + l.Units[u]
}

// TestSizeMatchesFloatFormat: every size around the unit boundaries, those
// that fall on an exact half of a tenth, and random ones read as they did.
func TestSizeMatchesFloatFormat(t *testing.T) {
	var ns []int64
	for _, base := range []int64{0, 1 << 10, 1 << 20, 1 << 30, 1 << 40} {
		for d := int64(-600); d <= 600; d++ {
			if n := base + d; n >= 0 {
				ns = append(ns, n, base*1023/1024+d, base*3/2+d)
			}
		}
	}
	// The sizes whose tenths of a KiB or MiB end in an exact half (1,25 Ko
	// is 1 280 bytes): rounded to the even tenth either way.
	for _, div := range []int64{1 << 10, 1 << 20} {
		for q := int64(10); q < 20000; q++ {
			if (div*q+div/2)%10 == 0 {
				ns = append(ns, (div*q+div/2)/10)
			}
		}
	}
	for range 20000 {
		ns = append(ns, rand.Int64N(1<<42))
	}
	for _, lang := range []string{"fr", "en"} {
		l := catalog(lang)
		for _, n := range ns {
			if got, want := l.size(n), sizeByFloat(l, n); got != want {
				t.Fatalf("%s size(%d) = %q, want %q", lang, n, got, want)
			}
		}
	}
}

func BenchmarkSize(b *testing.B) {
	l := catalog("fr")
	for b.Loop() {
		_ = l.size(187_654)
	}
}
