// Internal: Proposition 14 of Kairouz-Liu-Steinke 2021 with tau computed once per mechanism
// (DdgSumRdp recomputes it on every call; subsampling bounds evaluate the curve O(alpha) times).
#ifndef FEDLORA_PRIVACY_SRC_DDG_RDP_INTERNAL_H_
#define FEDLORA_PRIVACY_SRC_DDG_RDP_INTERNAL_H_

#include "fedlora/privacy/ddg_accounting.h"

namespace fedlora::privacy::internal {

class DdgSumRdpCurve {
 public:
  explicit DdgSumRdpCurve(const DdgSumMechanism& m);
  // RDP at order alpha > 1, charged at ceil(alpha); +inf where DdgSumRdp documents it.
  double operator()(double alpha) const;
  double tau() const { return tau_; }

 private:
  bool valid_ = false;
  double l2_scale_ = 0, l1_scale_ = 0, tau_ = 0, dim_ = 1;
};

}  // namespace fedlora::privacy::internal

#endif  // FEDLORA_PRIVACY_SRC_DDG_RDP_INTERNAL_H_
