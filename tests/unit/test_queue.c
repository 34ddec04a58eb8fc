// SPDX-License-Identifier: GPL-2.0-only
/*
 * The queueing code of `agentprof plan` (src/plan/queue.c) against published
 * values and closed forms:
 *  - Erlang C: the M/M/1 and M/M/2 closed forms (Kleinrock, Queueing Systems
 *    Vol. 1, 1975, sec. 3.5) and the call-centre worked example of 360 calls
 *    a half hour of 240 s on 55 agents (48 erlangs: P(wait) 0.2387, mean
 *    wait 8.18 s);
 *  - exact MVA: Jain, The Art of Computer Systems Performance Analysis,
 *    1991, Example 34.2 (timesharing system, 20 terminals, Z = 4 s);
 *    Bolch, Greiner, de Meer, Trivedi, Queueing Networks and Markov Chains,
 *    2nd ed. 2006, Example 8.3 (single-server stations) and Example 8.4 (a
 *    two-server station and a delay station) — the figures the GNU Octave
 *    queueing package's qncsmva tests hold to;
 *  - the finite-source (machine repairman) M/M/1//N closed form.
 */
#include <math.h>
#include <stdlib.h>

#include "plan/queue.h"
#include "test.h"

static void test_erlang_c(void)
{
	double rho = 0.5;

	ASSERT_NEAR(queue__erlang_c(1, 0.7), 0.7, 1e-12, "M/M/1: P(wait) = rho");
	ASSERT_NEAR(queue__erlang_c(2, 2 * rho), 2 * rho * rho / (1 + rho), 1e-12,
		    "M/M/2: P(wait) = 2 rho^2 / (1 + rho)");
	ASSERT_NEAR(queue__erlang_c(3, 2), 4.0 / 9, 1e-12, "c = 3, a = 2: 4/9");
	ASSERT_NEAR(queue__erlang_c(55, 48), 0.2387, 5e-5, "55 agents, 48 erlangs: 0.2387");
	ASSERT_NEAR(queue__mmc_wait_mean(55, 360.0 / 1800, 240), 8.18, 5e-3,
		    "55 agents, 48 erlangs: mean wait 8.18 s");
	ASSERT_NEAR(queue__erlang_c(400, 380), queue__erlang_c(400, 380), 0,
		    "400 servers: no overflow");
	ASSERT_TRUE(queue__erlang_c(400, 380) > 0 && queue__erlang_c(400, 380) < 1,
		    "400 servers, 380 erlangs: a probability");
	ASSERT_NEAR(queue__erlang_c(2, 2.5), 1, 0, "saturated: every arrival waits");
	ASSERT_TRUE(isinf(queue__mmc_wait_mean(1, 2, 0.5)), "saturated: infinite wait");
	/* M/M/1: P(W > t) = rho exp(-(mu - lambda) t). */
	ASSERT_NEAR(queue__mmc_wait_tail(1, 8, 0.1, 0.3), 0.8 * exp(-2 * 0.3), 1e-12,
		    "M/M/1 wait tail");
}

static void test_mva_jain(void)
{
	/* S = [0.125 0.3 0.2] s per visit, V = [16 10 5]: D = S V. */
	const struct queue_station st[] = {
	    {QK_QUEUE, 0.125 * 16, 1, 0}, {QK_QUEUE, 0.3 * 10, 1, 0}, {QK_QUEUE, 0.2 * 5, 1, 0}};
	const double v[] = {16, 10, 5}, r_visit[] = {0.373, 4.854, 0.300},
		     q[] = {1.991, 16.177, 0.500};
	struct queue_mva_point pts[20];
	struct queue_station_result res[20 * 3];
	int i;

	ASSERT_EQ(queue__mva(st, 3, 4, 20, pts, res), 0, "Jain 34.2: solves");
	for (i = 0; i < 3; i++) {
		ASSERT_NEAR(res[19 * 3 + i].residence / v[i], r_visit[i], 1e-3,
			    "Jain 34.2: response time per visit, station %d", i);
		ASSERT_NEAR(res[19 * 3 + i].queue_len, q[i], 1e-3, "Jain 34.2: queue length, station %d",
			    i);
	}
	/* Interactive response time law: N = X (R + Z). */
	ASSERT_NEAR(pts[19].x * (pts[19].r + 4), 20, 1e-9, "Jain 34.2: N = X (R + Z)");
	ASSERT_NEAR(pts[0].r, 6, 1e-12, "one user: R = sum of demands");
}

static void test_mva_bolch(void)
{
	/* Example 8.4: a 2-server station, two single servers, a delay; N = 3. */
	const struct queue_station st4[] = {{QK_MULTI, 0.5 * 1, 2, 0},
					    {QK_QUEUE, 0.6 * 0.5, 1, 0},
					    {QK_QUEUE, 0.8 * 0.5, 1, 0},
					    {QK_DELAY, 1 * 1, 0, 0}};
	const double q4[] = {0.624, 0.473, 0.686, 1.217};
	/* Example 8.3: four single servers, K = 6 jobs, no think time. */
	const struct queue_station st3[] = {{QK_QUEUE, 0.02 * 1, 1, 0},
					    {QK_QUEUE, 0.2 * 0.4, 1, 0},
					    {QK_QUEUE, 0.4 * 0.2, 1, 0},
					    {QK_QUEUE, 0.6 * 0.1, 1, 0}};
	const double u3[] = {0.198, 0.794, 0.794, 0.595};
	struct queue_mva_point pts[6];
	struct queue_station_result res[6 * 4];
	int i;

	ASSERT_EQ(queue__mva(st4, 4, 0, 3, pts, res), 0, "Bolch 8.4: solves");
	ASSERT_NEAR(pts[2].x, 1.218, 1e-3, "Bolch 8.4: throughput 1.218");
	for (i = 0; i < 4; i++)
		ASSERT_NEAR(res[2 * 4 + i].queue_len, q4[i], 1e-3, "Bolch 8.4: queue length, station %d",
			    i);
	ASSERT_EQ(queue__mva(st3, 4, 0, 6, pts, res), 0, "Bolch 8.3: solves");
	ASSERT_NEAR(pts[5].x, 9.920, 1e-3, "Bolch 8.3: throughput 9.920");
	for (i = 0; i < 4; i++)
		ASSERT_NEAR(res[5 * 4 + i].util, u3[i], 1e-3, "Bolch 8.3: utilization, station %d", i);
}

/* M/M/1//N: p0 = 1 / sum_k N!/(N-k)! (D/Z)^k, X = (1 - p0) / D. */
static void test_mva_repairman(void)
{
	const struct queue_station st[] = {{QK_QUEUE, 1.0, 1, 0}};
	struct queue_mva_point pts[10];
	double sum = 0, term = 1, p0;
	int k;

	for (k = 0; k <= 10; k++) {
		sum += term;
		term *= (10 - k) * (1.0 / 5);
	}
	p0 = 1 / sum;
	ASSERT_EQ(queue__mva(st, 1, 5, 10, pts, NULL), 0, "repairman: solves");
	ASSERT_NEAR(pts[9].x, (1 - p0) / 1.0, 1e-9, "repairman N=10, D=1, Z=5: closed form");
}

/* A multi-server station of c servers with c customers and no think time never queues. */
static void test_mva_multi(void)
{
	const struct queue_station st[] = {{QK_MULTI, 0.1, 8, 0}, {QK_DELAY, 0.5, 0, 0}};
	struct queue_mva_point pts[400];
	struct queue_station_result res[400 * 2];
	int n;

	ASSERT_EQ(queue__mva(st, 2, 0, 400, pts, res), 0, "8 servers: solves");
	ASSERT_NEAR(pts[0].r, 0.6, 1e-12, "8 servers: one customer, no wait");
	ASSERT_NEAR(pts[399].x, 80, 0.5, "8 servers, 400 customers: throughput -> c / D = 80");
	for (n = 1; n <= 400; n++) {
		if (pts[n - 1].x > fmin(n / 0.6, 80) + 1e-9)
			break;
	}
	ASSERT_EQ(n, 401, "throughput within the asymptotic bounds at every population");
	ASSERT_TRUE(res[399 * 2].p_wait > 0.99, "400 customers: nearly every arrival waits");
}

static void test_quantile(void)
{
	const double v[] = {1}, p[] = {1}, zero[] = {0};
	const double v2[] = {0.1, 0.5}, p2[] = {0.5, 0.5};
	const struct queue_wait exp_half = {0.5, 2, 1}, none = {0, 0, 1}, erl2 = {1, 2, 2};

	ASSERT_NEAR(queue__quantile_with_wait(v, p, 1, &exp_half, 0.9), 1 + 2 * log(5), 1e-6,
		    "1 s + wait (P 0.5, exponential, mean 2 s): p90 = 1 + 2 ln 5");
	ASSERT_NEAR(queue__quantile_with_wait(v2, p2, 2, &none, 0.95), 0.5, 1e-6,
		    "no wait: p95 of {0.1, 0.5} is 0.5");
	ASSERT_NEAR(queue__tail_with_wait(v2, p2, 2, &none, 0.3), 0.5, 1e-12,
		    "no wait: P(R > 0.3) = 0.5");
	/* Erlang(2) of mean 2 (rate 1): P(W > t) = e^-t (1 + t) = 0.1 at t = 3.88972. */
	ASSERT_NEAR(queue__quantile_with_wait(zero, p, 1, &erl2, 0.9), 3.88972, 1e-4,
		    "Erlang(2), mean 2: p90 = 3.88972");
}

/* Waits of M/M/c stations combine into an exponential; several ahead concentrate them. */
static void test_wait_combine(void)
{
	const double mean[] = {0.3}, m2[] = {0.5 * 2 * 0.6 * 0.6}, p[] = {0.5};
	const double mean2[] = {1, 1}, m2b[] = {1.1, 1.1}, p2[] = {1, 1};
	struct queue_wait w = queue__wait_combine(mean, m2, p, 1);

	ASSERT_NEAR(w.p, 0.5, 1e-12, "one exponential wait: its chance");
	ASSERT_NEAR(w.mean, 0.6, 1e-12, "one exponential wait: conditional mean");
	ASSERT_EQ(w.shape, 1, "one exponential wait: shape 1");
	w = queue__wait_combine(mean2, m2b, p2, 2);
	ASSERT_NEAR(w.mean, 2, 1e-12, "two certain waits: means add");
	ASSERT_EQ(w.shape, 20, "two waits of variance 0.1 each: mean^2 / var = 4 / 0.2");
}

/*
 * The repairman again: an arrival at population N finds the queue as it is
 * at N - 1 (arrival theorem), so P(wait) = 1 - p0(N - 1) and its mean wait
 * is the queue it finds times D.
 */
static void test_mva_arrival(void)
{
	const struct queue_station st[] = {{QK_QUEUE, 1.0, 1, 0}};
	struct queue_station_result res[10];
	struct queue_mva_point pts[10];
	double sum = 0, term = 1;
	int k;

	for (k = 0; k <= 9; k++) {
		sum += term;
		term *= (9 - k) * (1.0 / 5);
	}
	ASSERT_EQ(queue__mva(st, 1, 5, 10, pts, res), 0, "repairman: solves");
	ASSERT_NEAR(res[9].p_wait, 1 - 1 / sum, 1e-9, "N=10: P(wait) = 1 - p0 at N = 9");
	ASSERT_NEAR(res[9].wait_mean, res[9].residence - 1.0, 1e-9,
		    "N=10: mean wait = residence - D");
	ASSERT_TRUE(res[9].wait_m2 > res[9].wait_mean * res[9].wait_mean,
		    "N=10: the wait varies");
}

/*
 * A station whose demand is 30 ms busy and 36 ms idle (an event loop's
 * wakeups, plan/loadfit.h): alone, a request takes 36 ms; a crowd saturates
 * it at 1 / 30 ms; open arrivals solve u = lambda (0.036 - 0.006 u).
 */
static void test_idle_demand(void)
{
	const struct queue_station st[] = {{QK_QUEUE, 0.030, 1, 0.006}};
	const struct queue_station flat[] = {{QK_QUEUE, 0.036, 1, 0}};
	struct queue_mva_point pts[400], fpts[400];
	double u = 10 * 0.036 / 1.06;
	int n, rising = 1;

	ASSERT_EQ(queue__mva(st, 1, 1, 400, pts, NULL), 0, "idle demand: solves");
	ASSERT_EQ(queue__mva(flat, 1, 1, 400, fpts, NULL), 0, "flat: solves");
	ASSERT_NEAR(pts[0].r, 0.036, 1e-12, "one request alone: the idle demand");
	ASSERT_NEAR(pts[399].x, 1 / 0.030, 0.01 / 0.030, "400 users: saturated at 1 / 30 ms");
	ASSERT_NEAR(fpts[399].x, 1 / 0.036, 0.01 / 0.036, "flat: at 1 / 36 ms");
	for (n = 1; n < 400; n++)
		rising &= pts[n].x >= pts[n - 1].x - 1e-12 && pts[n].x >= fpts[n].x - 1e-12;
	ASSERT_TRUE(rising, "throughput rises with users, never below the flat station's");
	ASSERT_NEAR(queue__open_demand(&st[0], 0), 0.036, 1e-12, "open, no load: 36 ms");
	ASSERT_NEAR(queue__open_demand(&st[0], 10), 0.030 + 0.006 * (1 - u), 1e-12,
		    "open, 10 req/s: u = 0.36 / 1.06");
	ASSERT_NEAR(queue__open_demand(&st[0], 1 / 0.030), 0.030, 1e-12, "open, saturated: 30 ms");
	ASSERT_NEAR(queue__open_demand(&flat[0], 10), 0.036, 0, "flat: constant");
}

int main(void)
{
	test_erlang_c();
	test_mva_jain();
	test_mva_bolch();
	test_mva_repairman();
	test_mva_multi();
	test_quantile();
	test_wait_combine();
	test_mva_arrival();
	test_idle_demand();
	return test_report();
}
