/* ----------------------------------------------------------------------
   ScaleLink: the continuum rank's critical path of a dynamic LAMMPS–dolfinx coupling step,
   compiled (loaded with ctypes by scalelink.coupling.md_kernel).

   Between the arrival of the band atoms' forces f and the reply to the MD ranks a continuum
   rank of scalelink.coupling.md does, every step,

       g   <- g + c Bᵀ f              (c = kick / atom mass; Bᵀ: sparse, n_j x n_f)
       lam <- A⁻¹ g                   (A: the constraint operator, symmetric positive definite)
       r   <- r0 + R lam              (R: sparse, n_f x n_j, the reply map)

   and sends r back, each MD rank its own rows. Done from Python these are four library
   calls and two message calls, whose interpreter overhead is most of their cost; here they
   are one call that also waits for the forces itself.

   A is factorised once (in Python: reverse Cuthill–McKee ordering of its nodes, dense
   Cholesky, rows kept from their first non-zero on, the "envelope"). Its unknowns come in
   rows of `width` values (the components of a node) that share one scalar operator, so a
   solve is one forward and one backward sweep over the envelope with `width` right-hand sides.

   Messages: doubles, tags TAG_FORCES (forces in) and TAG_REPLY (reply out) of
   scalelink.coupling.exchange, on the communicator whose Fortran handle is given (the one fix
   scalelink/couple talks on).

   Every function returns 0 on success or an MPI error code; nothing throws across the C ABI.
------------------------------------------------------------------------- */

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <new>
#include <sched.h>
#include <vector>

namespace {

constexpr int TAG_FORCES = 7312, TAG_REPLY = 7313;

struct Csr {
  std::vector<int64_t> ptr, idx;
  std::vector<double> val;

  void assign(int64_t rows, const int64_t *p, const int64_t *i, const double *v)
  {
    ptr.assign(p, p + rows + 1);
    idx.assign(i, i + ptr.back());
    val.assign(v, v + ptr.back());
  }

  // y = a + s A x (a may alias y)
  void multiply_add(const double *x, double s, const double *a, double *y) const
  {
    const int64_t rows = static_cast<int64_t>(ptr.size()) - 1;
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0.0;
      for (int64_t k = ptr[r]; k < ptr[r + 1]; ++k) sum += val[k] * x[idx[k]];
      y[r] = a[r] + s * sum;
    }
  }
};

// A = L Lᵀ, A's unknowns in rows of `width` values sharing one scalar operator over `nodes`
struct Factor {
  int64_t nodes = 0, width = 1;
  std::vector<int64_t> perm;     // node k of the factor is node perm[k] of the vectors
  std::vector<int64_t> first;    // envelope: row k of L holds columns first[k] .. k
  std::vector<int64_t> start;    // where row k's values begin in l
  std::vector<double> l;         // L in the permuted order, row by row
  std::vector<double> work;      // nodes x width, the permuted right-hand side

  void assign(int64_t n, int64_t w, const int64_t *p, const int64_t *f, const int64_t *s, const double *values)
  {
    nodes = n;
    width = w;
    perm.assign(p, p + n);
    first.assign(f, f + n);
    start.assign(s, s + n + 1);
    l.assign(values, values + s[n]);
    work.assign(n * w, 0.0);
  }

  // x = A⁻¹ b, both nodes x width long in the vectors' (unpermuted) order
  void solve(const double *g, double *lam)
  {
    if (width == 2)
      sweeps<2>(g, lam);
    else if (width == 3)
      sweeps<3>(g, lam);
    else
      sweeps<1>(g, lam);
  }

  template <int W> void sweeps(const double *g, double *lam)
  {
    double *y = work.data();
    for (int64_t k = 0; k < nodes; ++k)
      for (int c = 0; c < W; ++c) y[k * W + c] = g[perm[k] * W + c];
    // forward, L y = b: row k is a dot product; two partial sums per component break the
    // dependency chain of the accumulation
    for (int64_t k = 0; k < nodes; ++k) {
      const double *row = &l[start[k]] - first[k];    // row[j] is L(k, j)
      double even[W] = {}, odd[W] = {};
      int64_t j = first[k];
      for (; j + 1 < k; j += 2) {
        const double a0 = row[j], a1 = row[j + 1];
        for (int c = 0; c < W; ++c) {
          even[c] += a0 * y[j * W + c];
          odd[c] += a1 * y[(j + 1) * W + c];
        }
      }
      if (j < k)
        for (int c = 0; c < W; ++c) even[c] += row[j] * y[j * W + c];
      const double inv = 1.0 / row[k];
      for (int c = 0; c < W; ++c) y[k * W + c] = (y[k * W + c] - even[c] - odd[c]) * inv;
    }
    // backward, Lᵀ x = y: column k of Lᵀ is row k of L, taken last to first; the updates of
    // one column are independent of each other
    for (int64_t k = nodes - 1; k >= 0; --k) {
      const double *row = &l[start[k]] - first[k];
      double xk[W];
      const double inv = 1.0 / row[k];
      for (int c = 0; c < W; ++c) xk[c] = (y[k * W + c] *= inv);
      for (int64_t j = first[k]; j < k; ++j)
        for (int c = 0; c < W; ++c) y[j * W + c] -= row[j] * xk[c];
    }
    for (int64_t k = 0; k < nodes; ++k)
      for (int c = 0; c < W; ++c) lam[perm[k] * W + c] = y[k * W + c];
  }
};

struct Kernel {
  int64_t n_f = 0, n_j = 0;      // atom-side values (atoms x components), constraint unknowns
  int64_t width = 0;             // values per atom (the dimension)
  Csr bt;                        // Bᵀ
  Csr reply_map[2];              // R for a full kick and for the first step's half kick
  Factor factor;                 // of the constraint operator A
  std::vector<double> received, forces, sorted_reply, sent_reply;
  std::vector<int64_t> rows;     // received row k is continuum row rows[k] (empty: the same)
  std::vector<int> src_rank, src_start, src_count;
  std::vector<MPI_Request> force_requests, reply_requests;
  MPI_Comm comm = MPI_COMM_NULL;
  double spin = 1e-4;
  double wait_seconds = 0.0;

  // Wait for requests: nap (20 µs sleeps) until `nap_for` seconds have passed, then spin
  // (yielding the core) for `spin` seconds, then nap again. Napping matters on machines whose
  // cores share execution resources: a spinning core slows the LAMMPS rank beside it.
  int wait(std::vector<MPI_Request> &requests, double nap_for = 0.0)
  {
    if (requests.empty()) return MPI_SUCCESS;
    const double begin = MPI_Wtime();
    int done = 0;
    while (true) {
      const int rc = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) return rc;
      if (done) break;
      const double elapsed = MPI_Wtime() - begin;
      if (elapsed >= nap_for && elapsed < nap_for + spin) {
        sched_yield();
      } else {
        timespec nap{0, 20000};
        nanosleep(&nap, nullptr);
      }
    }
    const double waited = MPI_Wtime() - begin;
    wait_seconds += waited;
    requests.clear();
    return MPI_SUCCESS;
  }

  // The forces come once per MD step, at a steady rhythm: nap through most of the expected wait
  // (what the last waits took, less a margin for the nap's own latency), spin for the rest.
  int wait_forces()
  {
    const double begin = MPI_Wtime();
    const int rc = wait(force_requests, std::max(0.0, 0.7 * expected_wait - 5e-5));
    const double waited = MPI_Wtime() - begin;
    expected_wait = 0.5 * expected_wait + 0.5 * waited;
    return rc;
  }

  double expected_wait = 0.0;    // running mean of the force waits, seconds
};

}    // namespace

extern "C" {

/* dim: values per atom. The constraint unknowns are nodes x width: width 1 when the factor is of
   the whole operator, dim when it is of the scalar operator both components share. bt: Bᵀ (n_j
   rows over n_f columns); r_full / r_half: R (n_f rows over n_j columns) for a full and a half
   kick; the factor: perm (nodes), first (nodes), start (nodes + 1) and l (start[nodes] values).
   Returns nullptr when out of memory. */
void *slk_create(int64_t n_f, int64_t dim, int64_t nodes, int64_t width,
                 const int64_t *bt_ptr, const int64_t *bt_idx, const double *bt_val,
                 const int64_t *rf_ptr, const int64_t *rf_idx, const double *rf_val,
                 const int64_t *rh_ptr, const int64_t *rh_idx, const double *rh_val,
                 const int64_t *perm, const int64_t *first, const int64_t *start, const double *l,
                 double spin)
{
  Kernel *k = new (std::nothrow) Kernel;
  if (!k) return nullptr;
  try {
    k->n_f = n_f;
    k->width = dim;
    k->n_j = nodes * width;
    k->bt.assign(k->n_j, bt_ptr, bt_idx, bt_val);
    k->reply_map[0].assign(n_f, rf_ptr, rf_idx, rf_val);
    k->reply_map[1].assign(n_f, rh_ptr, rh_idx, rh_val);
    k->factor.assign(nodes, width, perm, first, start, l);
    k->received.assign(n_f, 0.0);
    k->forces.assign(n_f, 0.0);
    k->sorted_reply.assign(n_f, 0.0);
    k->sent_reply.assign(n_f, 0.0);
    k->spin = spin;
  } catch (...) {
    delete k;
    return nullptr;
  }
  return k;
}

void slk_destroy(void *handle)
{
  delete static_cast<Kernel *>(handle);
}

/* Post the receives of this step's forces: nsrc MD ranks (ranks of the communicator comm),
   rank s sending count[s] atoms that are rows start[s] .. of the received order. rows:
   continuum row of each received atom (n_f / width of them), or nullptr when the same.
   Waits first for the previous step's reply sends (their buffer is reused). */
int slk_post(void *handle, int comm, int nsrc, const int *rank, const int *start, const int *count,
             const int64_t *rows)
{
  Kernel &k = *static_cast<Kernel *>(handle);
  int rc = k.wait(k.reply_requests);
  if (rc != MPI_SUCCESS) return rc;
  k.comm = MPI_Comm_f2c(static_cast<MPI_Fint>(comm));
  k.src_rank.assign(rank, rank + nsrc);
  k.src_start.assign(start, start + nsrc);
  k.src_count.assign(count, count + nsrc);
  if (rows)
    k.rows.assign(rows, rows + k.n_f / k.width);
  else
    k.rows.clear();
  const int w = static_cast<int>(k.width);
  k.force_requests.assign(nsrc, MPI_REQUEST_NULL);
  for (int s = 0; s < nsrc; ++s) {
    rc = MPI_Irecv(&k.received[static_cast<int64_t>(start[s]) * w], count[s] * w, MPI_DOUBLE, rank[s],
                   TAG_FORCES, k.comm, &k.force_requests[s]);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

/* Wait for the forces, then g += c Bᵀ f, lam = A⁻¹ g, reply = r0 + R lam (R: reply_map[slot]),
   send each MD rank its rows. g (n_j) is updated in place; lam (n_j) is written, and reply
   (n_f, continuum order) and forces_out (n_f, continuum order) when not nullptr. */
int slk_complete(void *handle, double *g, const double *r0, double c, int slot, double *lam, double *reply,
                 double *forces_out)
{
  Kernel &k = *static_cast<Kernel *>(handle);
  int rc = k.wait_forces();
  if (rc != MPI_SUCCESS) return rc;
  const int64_t w = k.width;
  const double *f = k.received.data();
  if (!k.rows.empty()) {
    const int64_t atoms = k.n_f / w;
    for (int64_t a = 0; a < atoms; ++a)
      for (int64_t d = 0; d < w; ++d) k.forces[k.rows[a] * w + d] = k.received[a * w + d];
    f = k.forces.data();
  }
  if (forces_out) std::copy(f, f + k.n_f, forces_out);
  k.bt.multiply_add(f, c, g, g);
  k.factor.solve(g, lam);
  // the reply is computed and sent from the kernel's own buffers, which live until the sends are done
  k.reply_map[slot != 0 ? 1 : 0].multiply_add(lam, 1.0, r0, k.sorted_reply.data());
  const double *out = k.sorted_reply.data();
  if (!k.rows.empty()) {
    const int64_t atoms = k.n_f / w;
    for (int64_t a = 0; a < atoms; ++a)
      for (int64_t d = 0; d < w; ++d) k.sent_reply[a * w + d] = k.sorted_reply[k.rows[a] * w + d];
    out = k.sent_reply.data();
  }
  const int ws = static_cast<int>(w);
  k.reply_requests.assign(k.src_rank.size(), MPI_REQUEST_NULL);
  for (std::size_t s = 0; s < k.src_rank.size(); ++s) {
    rc = MPI_Isend(out + static_cast<int64_t>(k.src_start[s]) * ws, k.src_count[s] * ws, MPI_DOUBLE,
                   k.src_rank[s], TAG_REPLY, k.comm, &k.reply_requests[s]);
    if (rc != MPI_SUCCESS) return rc;
  }
  if (reply) std::copy(k.sorted_reply.begin(), k.sorted_reply.end(), reply);
  return MPI_SUCCESS;
}

/* Wait until the last replies have gone. */
int slk_finish(void *handle)
{
  Kernel &k = *static_cast<Kernel *>(handle);
  return k.wait(k.reply_requests);
}

/* Seconds spent waiting for forces and for sends since the kernel was made. */
double slk_wait_seconds(void *handle)
{
  return static_cast<Kernel *>(handle)->wait_seconds;
}

/* lam = A⁻¹ g alone (tests). */
void slk_solve(void *handle, const double *g, double *lam)
{
  static_cast<Kernel *>(handle)->factor.solve(g, lam);
}

/* A factor on its own (the FE mass, the L2 projection): the arrays as for slk_create. */
void *slk_factor_create(int64_t nodes, int64_t width, const int64_t *perm, const int64_t *first,
                        const int64_t *start, const double *l)
{
  Factor *f = new (std::nothrow) Factor;
  if (!f) return nullptr;
  try {
    f->assign(nodes, width, perm, first, start, l);
  } catch (...) {
    delete f;
    return nullptr;
  }
  return f;
}

/* x = A⁻¹ b (nodes x width values each; b and x may be the same array). */
void slk_factor_solve(void *handle, const double *b, double *x)
{
  static_cast<Factor *>(handle)->solve(b, x);
}

void slk_factor_destroy(void *handle)
{
  delete static_cast<Factor *>(handle);
}

}    // extern "C"
