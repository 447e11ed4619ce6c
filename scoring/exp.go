package scoring

import "math"

// Exp is e**x computed the same way, to the bit, on every machine.
//
// math.Exp is not: on amd64 it runs assembly that uses fused multiply-add
// instructions where the CPU has them (math/exp_amd64.go), so the same
// binary scores a candidate with different low bits on a machine with FMA
// and on one without. A decision must replay to the same bits months later
// on whatever machine the audit runs (decision.Engine.Replay), so scoring
// uses this: the algorithm of Go's portable math.exp (FreeBSD's
// e_exp.c), in plain float64 operations. Every product is converted to
// float64 explicitly, which the Go specification says rounds it, so that
// no compiler fuses a multiply and an add here either.
//
// It agrees with math.Exp to within a few units in the last place
// (TestExpMatchesMath) and is as fast (BenchmarkExp).
func Exp(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00

		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28) // 2**-28
	)
	switch {
	case math.IsNaN(x):
		return x
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	return expmulti(hi, lo, k)
}

// expmulti returns e**r × 2**k where r = hi - lo and |r| ≤ ln(2)/2.
func expmulti(hi, lo float64, k int) float64 {
	const (
		p1 = 1.66666666666666657415e-01
		p2 = -2.77777777770155933842e-03
		p3 = 6.61375632143793436117e-05
		p4 = -1.65339022054652515390e-06
		p5 = 4.13813679705723846039e-08
	)
	r := hi - lo
	t := float64(r * r)
	c := r - float64(t*(p1+float64(t*(p2+float64(t*(p3+float64(t*(p4+float64(t*p5)))))))))
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return math.Ldexp(y, k)
}
