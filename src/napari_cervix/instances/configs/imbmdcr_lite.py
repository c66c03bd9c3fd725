# IMBMDCR-Net, lite preset: the full preset's design scaled to train on 2 CPU cores.
#
# Kept from the paper: grouped-convolution (ResNeXt) bottlenecks with DCNv2 on every 3x3 conv of C3-C5,
# FPN P2-P6 (P6 by max-pooling), anchors 8 x {0.5, 1, 2}, three cascade stages at IoU 0.5/0.6/0.7,
# RoIAlign 7x7 / 14x14, one mask head on the last stage, classes cell and nucleus.
# Scaled down: blocks per stage 1/1/2/1 instead of 3/4/23/3, stem 32 channels, 8 groups of 4 channels in
# the first stage (widths 32..256 instead of 256..2048), FPN and heads 64 channels, 256-wide box FCs,
# fewer proposals. One input channel: the ISBI data are gray (color images are converted to luminance).
# GroupNorm instead of BatchNorm: the lite model trains from scratch with 2 images per step, where batch
# statistics are too noisy.
_base_ = "./imbmdcr_full.py"

in_channels = 1

model = dict(
    data_preprocessor=dict(mean=[127.5], std=[64.0]),
    backbone=dict(
        depth=17,
        groups=8,
        base_width=4,
        base_channels=16,
        stem_channels=32,
        in_channels=1,
        norm_cfg=dict(type="GN", num_groups=8, requires_grad=True),
        norm_eval=False,
    ),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=[
            dict(
                type="Shared2FCBBoxHead",
                in_channels=64,
                fc_out_channels=256,
                roi_feat_size=7,
                num_classes=2,
                bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0),
            )
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64),
    ),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=1000),
        rcnn=[
            dict(
                assigner=dict(
                    type="MaxIoUAssigner",
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou,
                    match_low_quality=False,
                    ignore_iof_thr=-1,
                ),
                sampler=dict(type="RandomSampler", num=256, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False,
            )
            for iou in (0.5, 0.6, 0.7)
        ],
    ),
    # 300 proposals instead of 1000: the RoI heads dominate CPU inference, and a field holds < 60 cells.
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)),
)

# Training from scratch on a CPU budget: AdamW with warm-up and cosine decay converges in far fewer
# steps than the paper's SGD at lr 0.001 (which assumes an ImageNet-initialised backbone).
schedule = dict(
    _delete_=True,
    optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
    batch_size=2,
    steps=6000,
    warmup_steps=300,
    min_lr_ratio=0.02,
    grad_clip=10.0,
)
