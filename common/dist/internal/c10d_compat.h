// Where c10d differs between LibTorch 1.13 (Debian's, the default CPU build) and LibTorch 2.x
// (the `cuda` preset's), in one place. Include after the c10d headers.
//
//  - 1.13: ProcessGroupGloo / ProcessGroupNCCL derive from c10d::ProcessGroup.
//  - 2.x: they derive from c10d::Backend (one per device type); c10d::ProcessGroup became the
//    dispatching front that owns backends. We drive the backends directly, so the type that
//    carries a collective is the backend class.
#ifndef RLHF_COMMON_DIST_INTERNAL_C10D_COMPAT_H_
#define RLHF_COMMON_DIST_INTERNAL_C10D_COMPAT_H_

#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

namespace rlhf::dist::internal {

#if TORCH_VERSION_MAJOR >= 2
using CollectiveGroup = c10d::Backend;
#else
using CollectiveGroup = c10d::ProcessGroup;
#endif

}  // namespace rlhf::dist::internal

#endif  // RLHF_COMMON_DIST_INTERNAL_C10D_COMPAT_H_
