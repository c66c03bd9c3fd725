# IMBMDCR-Net, full preset: the model of Ding, Yue & Li (2023) in MMDetection 3.3 terms.
#
# ResNeXt-101 64x4d (bottleneck blocks, every 3x3 conv a 64-group convolution of 4 channels per group
# in the first stage), every 3x3 conv of C3-C5 a modulated deformable convolution (DCNv2); FPN P2-P5 plus
# P6 by max-pooling P5; RPN anchors of base scale 8, ratios 0.5/1/2; Cascade R-CNN, three stages at IoU
# 0.5/0.6/0.7; RoIAlign 7x7 for boxes and 14x14 for masks; one mask head on the last stage's boxes;
# classes cell and nucleus. Read by napari_cervix.instances.model (mmengine Config), never executed
# as a module of the package.
#
# 'TVDCNv2' is DCNv2 on torchvision's deform_conv2d (same parameters and output as mmcv's 'DCNv2');
# 'TVRoIAlign' is mmcv's RoIAlign on torchvision's kernel: both run on any device torch supports.

classes = ("cell", "nucleus")
in_channels = 3  # gray images are repeated to 3 channels, so ImageNet-style weights can be loaded
train_size = 512  # ISBI 2014 fields are 512x512; larger images are tiled at this size

model = dict(
    type="CascadeRCNN",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0],
        bgr_to_rgb=False,  # inputs are gray repeated: channel order carries nothing
        pad_mask=True,
        pad_size_divisor=32,
    ),
    backbone=dict(
        type="CervixResNeXt",
        depth=101,
        groups=64,
        base_width=4,
        in_channels=3,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=True,
        style="pytorch",
        dcn=dict(type="TVDCNv2", deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
    ),
    neck=dict(type="FPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    rpn_head=dict(
        type="RPNHead",
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0),
    ),
    roi_head=dict(
        type="LastStageMaskCascadeRoIHead",
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        mask_loss_weight=1.0,
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="TVRoIAlign", output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
        ),
        bbox_head=[
            dict(
                type="Shared2FCBBoxHead",
                in_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=2,
                bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0),
            )
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="TVRoIAlign", output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
        ),
        mask_head=dict(
            type="FCNMaskHead",
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=2,
            loss_mask=dict(type="CrossEntropyLoss", use_mask=True, loss_weight=1.0),
        ),
    ),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1,
            ),
            sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=0,
            pos_weight=-1,
            debug=False,
        ),
        rpn_proposal=dict(nms_pre=2000, max_per_img=2000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
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
                sampler=dict(type="RandomSampler", num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False,
            )
            for iou in (0.5, 0.6, 0.7)
        ],
    ),
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100, mask_thr_binary=0.5),
    ),
)

# The paper's schedule: SGD, lr 0.001, momentum 0.9, weight decay 1e-4, batch 2, 24 epochs, lr x0.1
# after epochs 8 and 11 (as the paper states it).
schedule = dict(
    optimizer=dict(type="SGD", lr=0.001, momentum=0.9, weight_decay=1e-4),
    batch_size=2,
    epochs=24,
    milestones=[8, 11],
    gamma=0.1,
    warmup_steps=500,
    grad_clip=None,
)
